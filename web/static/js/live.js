/* Live events: an EventSource on /api/events that comes back by itself.
   cclLive.connect({onEvent: fn(name, data), onState: fn("live"|"down")}) -> {close()}.
   The browser's EventSource retries on its own after a network error; when the server
   refused (e.g. the session ended) it gives up (readyState CLOSED): we then try again with
   a growing pause, and a 401 from the JSON calls sends the user to the login page. */
(function () {
  "use strict";
  var TOPICS = ["hello", "speed", "coil", "defect", "review", "image", "link", "alert", "model", "tracking", "event"];

  function connect(options) {
    var source = null, closed = false, pause = 1000, timer = null;
    function state(value) { if (options.onState) { options.onState(value); } }
    function open() {
      if (closed) { return; }
      source = new EventSource(options.url || "/api/events");
      TOPICS.forEach(function (name) {
        source.addEventListener(name, function (event) {
          var data = null;
          try { data = JSON.parse(event.data); } catch (e) { data = event.data; }
          if (name === "hello") { pause = 1000; state("live"); }
          options.onEvent(name, data);
        });
      });
      source.onerror = function () {
        state("down");
        if (source.readyState === EventSource.CLOSED) {
          source.close();
          timer = window.setTimeout(open, pause);
          pause = Math.min(pause * 2, 30000);
        }
      };
    }
    open();
    return {close: function () { closed = true; if (timer) { clearTimeout(timer); } if (source) { source.close(); } }};
  }

  /* Run fn at most once at a time; a call while it runs schedules one more run after it. */
  function coalesce(fn) {
    var running = false, again = false;
    function run() {
      if (running) { again = true; return; }
      running = true; again = false;
      Promise.resolve().then(fn).catch(function (e) { if (window.console) { console.warn(e); } })
        .then(function () { running = false; if (again) { run(); } });
    }
    return run;
  }

  window.cclLive = {connect: connect, coalesce: coalesce};
})();
