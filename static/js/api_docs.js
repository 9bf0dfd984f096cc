// The API reference page (/api/docs): Swagger UI drawing the OpenAPI document the page names.
// A file of its own, not an inline script: the Content-Security-Policy allows none.
window.addEventListener("DOMContentLoaded", function () {
  var target = document.getElementById("api-reference");
  window.SwaggerUIBundle({
    url: target.dataset.document,
    domNode: target,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
  });
});
