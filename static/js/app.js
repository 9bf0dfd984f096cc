// Duebook's only script besides htmx: toasts, length counters on limited text fields, closing
// open menus on outside clicks, and the Menu button that opens the navigation on a phone.
// Kept in a file because the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";

  function showToast(message, category) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var toast = document.createElement("p");
    toast.className = "toast toast--" + (category || "success");
    toast.setAttribute("role", category === "error" ? "alert" : "status");
    toast.textContent = message;
    box.appendChild(toast);
    setTimeout(function () { toast.classList.add("toast--leaving"); }, 4000);
    setTimeout(function () { toast.remove(); }, 4600);
  }

  document.addEventListener("duebook:toast", function (event) {
    var toasts = event.detail && event.detail.value ? event.detail.value : event.detail;
    (Array.isArray(toasts) ? toasts : [toasts]).forEach(function (t) {
      if (t && t.message) showToast(t.message, t.category);
    });
  });

  document.addEventListener("htmx:responseError", function (event) {
    showToast("That did not work (" + event.detail.xhr.status + "). Please try again.", "error");
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.classList && form.classList.contains("confirm") && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);

  // A form that creates something (it carries a one-time key) disables its buttons once sent,
  // so a double click sends it once; the server refuses a second submission anyway. Disabled
  // after the browser (or htmx) has read the form, so the clicked button's value still goes.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented) return;  // a confirmation was declined
    if (!form.querySelector || !form.querySelector('input[name="form_key"]')) return;
    var buttons = form.querySelectorAll("button:not([disabled]), input[type=submit]:not([disabled])");
    setTimeout(function () {
      buttons.forEach(function (button) {
        button.disabled = true;
        button.dataset.sentOnce = "1";
      });
    }, 0);
  }, true);

  // htmx answered without replacing the form, or the page came back from the history cache.
  function enableSentButtons() {
    document.querySelectorAll("[data-sent-once]").forEach(function (button) {
      button.disabled = false;
      delete button.dataset.sentOnce;
    });
  }
  document.addEventListener("htmx:afterRequest", enableSentButtons);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) enableSentButtons();
  });

  // The Menu button (shown on narrow screens only) opens and closes the navigation it controls;
  // Escape closes it and gives the focus back to the button.
  function setNavOpen(toggle, open) {
    var nav = document.getElementById(toggle.getAttribute("aria-controls"));
    if (!nav) return;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    nav.classList.toggle("is-open", open);
  }
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest(".nav-toggle");
    if (toggle) setNavOpen(toggle, toggle.getAttribute("aria-expanded") !== "true");
  });
  document.addEventListener("keydown", function (event) {
    var toggle = document.querySelector('.nav-toggle[aria-expanded="true"]');
    if (event.key !== "Escape" || !toggle) return;
    setNavOpen(toggle, false);
    toggle.focus();
  });

  // A text field with a length limit (maxlength and data-counter) shows how much of it is
  // used, so a long text is shortened while typing rather than refused on saving.
  function attachCounter(field) {
    if (field.dataset.counterReady) return;
    field.dataset.counterReady = "1";
    var counter = document.createElement("span");
    counter.className = "char-counter";
    counter.id = (field.id || field.name) + "-counter";
    counter.setAttribute("aria-live", "polite");
    var described = field.getAttribute("aria-describedby");
    field.setAttribute("aria-describedby", (described ? described + " " : "") + counter.id);
    field.insertAdjacentElement("afterend", counter);
    function update() {
      var limit = field.maxLength;
      var used = field.value.length;
      counter.textContent = used.toLocaleString() + " / " + limit.toLocaleString();
      counter.classList.toggle("char-counter--full", used >= limit);
    }
    field.addEventListener("input", update);
    update();
  }
  function attachCounters(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[maxlength][data-counter]").forEach(attachCounter);
  }
  document.addEventListener("DOMContentLoaded", function () { attachCounters(document); });
  document.addEventListener("htmx:load", function (event) { attachCounters(event.target); });

  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
})();
