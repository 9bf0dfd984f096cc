// Field visits: fill the visit form's position from the device (navigator.geolocation).
// A fieldset marked data-geolocate holds the latitude and longitude inputs, a hidden
// accuracy_m input and a status line (#geo-status). The accuracy is what tells the server the
// position came from the device: typing into latitude or longitude clears it, so a typed
// position is checked by a manager. In a file because the CSP forbids inline scripts.
(function () {
  "use strict";

  var REASONS = {
    1: "you did not allow this page to use your location",
    2: "the device could not find its position",
    3: "finding the position took too long"
  };

  function parts(box) {
    var form = box.closest("form");
    return {
      lat: form.querySelector("[name=latitude]"),
      lon: form.querySelector("[name=longitude]"),
      accuracy: form.querySelector("[name=accuracy_m]"),
      status: box.querySelector("#geo-status")
    };
  }

  function say(p, text) {
    if (p.status) p.status.textContent = text;
  }

  function locate(box) {
    var p = parts(box);
    if (!navigator.geolocation) {
      say(p, "This browser cannot share its position. Type the coordinates from a map, or " +
        "leave them empty: the visit is then checked by a manager.");
      return;
    }
    say(p, "Asking this device for its position…");
    navigator.geolocation.getCurrentPosition(function (position) {
      var c = position.coords;
      p.lat.value = c.latitude.toFixed(6);
      p.lon.value = c.longitude.toFixed(6);
      p.accuracy.value = String(Math.ceil(c.accuracy));
      say(p, "Position taken from this device (±" + Math.ceil(c.accuracy) + " m).");
    }, function (error) {
      p.accuracy.value = "";
      say(p, "No position from this device: " + (REASONS[error.code] || error.message) +
        ". Type the coordinates from a map, or leave them empty: the visit is then checked " +
        "by a manager.");
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  }

  function setUp(root) {
    (root || document).querySelectorAll("[data-geolocate]").forEach(function (box) {
      if (box.dataset.geolocateReady) return;
      box.dataset.geolocateReady = "1";
      var p = parts(box);
      // Keep what a failed submission sent back (the server re-shows it with its accuracy).
      if (!(p.lat.value && p.accuracy.value)) locate(box);
      [p.lat, p.lon].forEach(function (input) {
        input.addEventListener("input", function () {
          p.accuracy.value = "";
          say(p, "Position typed in: the visit will be checked by a manager.");
        });
      });
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-geolocate-button]");
    if (button) locate(button.closest("[data-geolocate]"));
  });
  document.addEventListener("htmx:load", function (event) { setUp(event.target); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  } else {
    setUp(document);
  }
})();
