// Duebook's only script besides htmx: toasts, and closing open menus on outside clicks.
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

  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
})();
