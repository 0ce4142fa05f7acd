// switchpoint console: the little the pages need from a script (they all work without it).
"use strict";
(function () {
  // Forms that ask before they change something (revoking a key).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
  // The models page: breaker state, live, every 5 seconds.
  var cells = document.querySelectorAll("[data-breaker]");
  if (!cells.length) return;
  function refresh() {
    fetch("/ui/models/breakers.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        if (!doc) return;
        cells.forEach(function (cell) {
          var b = doc.deployments[cell.getAttribute("data-breaker")];
          var badge = cell.querySelector(".badge");
          if (!badge) return;
          var state = b ? b.state : "closed";
          badge.textContent = state;
          badge.className = "badge " + state;
          badge.setAttribute("data-breaker-state", state);
        });
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
})();
