// Drag to reorder: a list marked data-reorder="<form id>" whose draggable items each carry a
// hidden input of that form. After a drop that changed the order, the form gets a "reordered"
// event; htmx (hx-trigger="reordered") posts the ids in their new order. Native HTML5
// drag and drop, no library; the ↑ ↓ buttons next to each item do the same without a mouse.
(function () {
  "use strict";

  var dragged = null;
  var before = "";

  function orderOf(list) {
    return Array.prototype.map.call(list.children, function (el) { return el.id; }).join(",");
  }

  function itemAt(target) {
    var item = target && target.closest ? target.closest("[data-reorder] > [draggable=true]") : null;
    return item;
  }

  document.addEventListener("dragstart", function (event) {
    var item = itemAt(event.target);
    if (!item) return;
    dragged = item;
    before = orderOf(item.parentNode);
    item.classList.add("is-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.id); // Firefox starts a drag only with data
  });

  document.addEventListener("dragover", function (event) {
    if (!dragged) return;
    var over = itemAt(event.target);
    if (!over || over.parentNode !== dragged.parentNode) return;
    event.preventDefault(); // allows the drop
    if (over === dragged) return;
    var box = over.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  });

  document.addEventListener("drop", function (event) {
    if (dragged) event.preventDefault();
  });

  document.addEventListener("dragend", function () {
    if (!dragged) return;
    var list = dragged.parentNode;
    dragged.classList.remove("is-dragging");
    dragged = null;
    if (orderOf(list) === before) return;
    var form = document.getElementById(list.getAttribute("data-reorder"));
    if (form && window.htmx) window.htmx.trigger(form, "reordered");
  });
})();
