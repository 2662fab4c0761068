// The TAM console's one script, served from /static/console.js (the CSP allows no inline script).
// It keeps the queue's countdowns live: every element with data-deadline (RFC 3339) shows the time
// left to it, or how long it is overdue. Without it, the page still shows the deadline and the
// minutes left when it was rendered.
"use strict";
(function () {
  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function format(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    s = s % 60;
    if (d > 0) { return d + " d " + h + " h " + pad(m) + " min"; }
    if (h > 0) { return h + " h " + pad(m) + " min " + pad(s) + " s"; }
    return m + " min " + pad(s) + " s";
  }

  function tick() {
    var now = Date.now();
    var items = document.querySelectorAll("[data-deadline]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var deadline = Date.parse(el.getAttribute("data-deadline"));
      if (isNaN(deadline)) { continue; }
      var left = deadline - now;
      el.textContent = left >= 0 ? "in " + format(left) : "overdue by " + format(left);
      if (left < 0) {
        var row = el.closest("tr");
        if (row) { row.classList.add("overdue"); }
      }
    }
  }

  function start() {
    tick();
    window.setInterval(tick, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
