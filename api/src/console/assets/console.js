// Live parts of the console: every element with data-live="<url>" is refreshed from that
// url (an HTML fragment rendered by the server, values already escaped there) every
// data-every milliseconds, without reloading the page. Polling stops while the tab is
// hidden and when the session has ended (the fragment then answers 401 or a redirect).
"use strict";
(function () {
  function poll(el) {
    var url = el.getAttribute("data-live");
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    var stopped = false;
    function tick() {
      if (stopped) return;
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401 || r.type === "opaqueredirect") { stopped = true; el.setAttribute("data-stopped", "session"); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            el.innerHTML = html;
            el.setAttribute("data-updated", String(Date.now()));
          }
        })
        .catch(function () { /* a missed refresh: the next one tries again */ })
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("[data-live]");
    for (var i = 0; i < live.length; i++) poll(live[i]);
  });
})();
