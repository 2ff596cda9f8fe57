/* 시스템 page: service buttons, log tail (live through SSE), host figures, alert acknowledge. */
(function () {
  "use strict";
  var problem = document.getElementById("action-problem");

  function showProblem(error) {
    var body = error.body || {};
    var details = body.details ? " (" + (typeof body.details === "string" ? body.details : JSON.stringify(body.details)) + ")" : "";
    problem.textContent = (body.error || error.message) + details;
    problem.hidden = false;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) { return; }
    if (button.dataset.action) {
      var label = button.textContent.trim() + " " + button.dataset.service;
      if (!window.confirm(label + ": " + ccl.t("정말 실행하시겠습니까?", "Do you really want to do this?"))) { return; }
      button.disabled = true;
      ccl.api("/api/system/services/" + encodeURIComponent(button.dataset.service) + "/" + button.dataset.action, {method: "POST", body: {}})
        .then(function () { window.location.reload(); })
        .catch(function (error) { button.disabled = false; showProblem(error); });
    } else if (button.dataset.ack) {
      button.disabled = true;
      ccl.api("/api/alerts/" + button.dataset.ack + "/ack", {method: "POST", body: {}})
        .then(function (answer) {
          var alert = answer.alert;
          button.parentNode.textContent = alert.acknowledged_by + " · " + new Date(alert.acknowledged_at).toLocaleString();
        })
        .catch(function (error) { button.disabled = false; showProblem(error); });
    } else if (button.dataset.log) {
      openLog(button.dataset.log);
    }
  });

  var panel = document.getElementById("log-panel");
  var lines = document.getElementById("log-lines");
  var follow = document.getElementById("log-follow");
  var state = document.getElementById("log-state");
  var current = null;
  var source = null;
  var MAX_SHOWN = 5000;

  function append(text) {
    var atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
    lines.appendChild(document.createTextNode(text + "\n"));
    while (lines.childNodes.length > MAX_SHOWN) { lines.removeChild(lines.firstChild); }
    if (atBottom) { lines.scrollTop = lines.scrollHeight; }
  }

  function stopFollowing() {
    if (source) { source.close(); source = null; }
  }

  function startFollowing() {
    stopFollowing();
    lines.textContent = "";
    source = new EventSource("/api/system/services/" + encodeURIComponent(current) + "/logs/stream");
    source.onopen = function () { state.textContent = ""; };
    source.onmessage = function (event) { append(event.data); };
    source.addEventListener("error", function (event) {
      if (event.data) {
        try { state.textContent = JSON.parse(event.data).error; } catch (e) { state.textContent = event.data; }
        if (state.textContent === "session ended") { stopFollowing(); }  // reconnecting would be refused
      } else {
        state.textContent = ccl.t("재연결 중…", "reconnecting…");
      }
    });
  }

  function openLog(service) {
    current = service;
    panel.hidden = false;
    document.getElementById("log-service").textContent = service;
    if (follow.checked) { startFollowing(); return; }
    stopFollowing();
    state.textContent = "";
    ccl.api("/api/system/services/" + encodeURIComponent(service) + "/logs?lines=500")
      .then(function (answer) {
        lines.textContent = "";
        answer.lines.forEach(append);
        lines.scrollTop = lines.scrollHeight;
      })
      .catch(function (error) { state.textContent = (error.body && error.body.details) || error.message; });
  }

  /* The host figures come as display texts (host_view): put them in place. */
  function refreshHost(view) {
    var card = document.getElementById("host");
    if (!view || !card) { return; }
    card.hidden = false;
    ["sampled_at", "cpu", "load", "memory", "network_in", "network_out"].forEach(function (key) {
      card.querySelector('[data-host="' + key + '"]').textContent = view[key];
    });
    view.disks.forEach(function (disk) {
      var row = card.querySelector('tr[data-volume="' + CSS.escape(disk.volume) + '"]');
      if (!row) { return; }
      ["used", "free", "total", "percent"].forEach(function (key) {
        row.querySelector('[data-disk="' + key + '"]').textContent = disk[key];
      });
    });
  }

  /* Keep the state, pid, uptime and restart columns and the host figures current without reloading the page. */
  function refreshServices() {
    ccl.api("/api/system/services").then(function (answer) {
      refreshHost(answer.host_view);
      answer.services.forEach(function (service) {
        var row = document.querySelector('#services tr[data-service="' + CSS.escape(service.id) + '"]');
        if (!row) { return; }
        var state = row.querySelector('[data-field="state"]');
        state.textContent = "";
        state.appendChild(ccl.el("span", {className: "state state-" + service.state, text: service.state}));
        row.querySelector('[data-field="pid"]').textContent = service.pid == null ? "-" : service.pid;
        row.querySelector('[data-field="uptime"]').textContent =
          typeof service.uptime === "number" ? Math.round(service.uptime) + " s" : "-";
        row.querySelector('[data-field="restarts"]').textContent = service.restarts == null ? "-" : service.restarts;
      });
    }).catch(function () { /* the notice on the page already says when the orchestrator is away */ });
  }
  if (!document.getElementById("orchestrator-problem")) { window.setInterval(refreshServices, 5000); }

  if (follow) {
    follow.addEventListener("change", function () {
      if (!current) { return; }
      if (follow.checked) { startFollowing(); } else { stopFollowing(); openLog(current); }
    });
  }
})();
