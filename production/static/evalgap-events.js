/* evalgap-events.js: report what users do with an answer (docs/proxy-and-events.md).

   <script src="https://EVALGAP/evalgap-events.js" data-key="pk_..." async></script>

   Mark each answer with the turn id it came from (the proxy returns it as X-Evalgap-Turn-Id):
     <div data-evalgap-turn="TURN_ID"> ... <button data-evalgap-thumbs="up">...</button> </div>
   Copying text inside it reports `copy`; a click on [data-evalgap-thumbs=up|down] reports
   `thumbs_up`/`thumbs_down`; leaving the page reports `navigate_away` for the last answer shown.
   By hand: evalgap.copy(id), evalgap.thumbsUp(id), evalgap.thumbsDown(id), evalgap.navigateAway(id)
   (each returns the fetch promise). The key can only add events; it reads nothing. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var key = script.getAttribute("data-key") || "";
  var endpoint = new URL("/api/browser-events/", script.src).href;

  function body(turnId, type, reason) {
    var event = {key: key, turn_id: String(turnId), type: type};
    if (reason) event.reason = String(reason);
    return JSON.stringify(event);
  }

  // text/plain keeps the request "simple" (no CORS preflight); the server reads it as JSON.
  function send(turnId, type, reason) {
    return fetch(endpoint, {method: "POST", body: body(turnId, type, reason), mode: "cors",
                            credentials: "omit", keepalive: true, headers: {"Content-Type": "text/plain"}});
  }

  // Leaving the page: a beacon survives the unload where a fetch may be cancelled.
  function beacon(turnId, type) {
    if (navigator.sendBeacon) {
      return navigator.sendBeacon(endpoint, new Blob([body(turnId, type)], {type: "text/plain"}));
    }
    send(turnId, type);
    return true;
  }

  function turnOf(node) {
    var el = node && (node.nodeType === 1 ? node : node.parentElement);
    el = el && el.closest("[data-evalgap-turn]");
    return el ? el.getAttribute("data-evalgap-turn") : null;
  }

  document.addEventListener("copy", function () {
    var selection = document.getSelection();
    var turn = selection && turnOf(selection.anchorNode);
    if (turn) send(turn, "copy");
  });

  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-evalgap-thumbs]");
    var turn = button && turnOf(button);
    if (turn) send(turn, button.getAttribute("data-evalgap-thumbs") === "down" ? "thumbs_down" : "thumbs_up");
  });

  window.addEventListener("pagehide", function () {
    var shown = document.querySelectorAll("[data-evalgap-turn]");
    if (shown.length) beacon(shown[shown.length - 1].getAttribute("data-evalgap-turn"), "navigate_away");
  });

  window.evalgap = {
    copy: function (id) { return send(id, "copy"); },
    thumbsUp: function (id, reason) { return send(id, "thumbs_up", reason); },
    thumbsDown: function (id, reason) { return send(id, "thumbs_down", reason); },
    navigateAway: function (id) { return send(id, "navigate_away"); },
  };
})();
