/* AI 모델: metrics history per model (accuracy, precision, recall, F1 over time); admins
   mark the deployed model (POST with the CSRF header; the server audits it). */
(function () {
  "use strict";
  var holder = document.getElementById("models-state");
  var s = JSON.parse(holder.textContent), t = ccl.t;
  var METRICS = [["accuracy_score", "정확도", "Accuracy", "#1f6feb"], ["precision_score", "정밀도", "Precision", "#2ca02c"],
                 ["recall_score", "재현율", "Recall", "#ff7f0e"], ["f1_score", "F1", "F1", "#9467bd"]];
  var grid = document.getElementById("history");
  s.models.forEach(function (m) {
    var points = s.history.filter(function (h) { return h.model_id === m.id; });
    var card = ccl.el("section", {className: "card", "data-model": m.id}, [ccl.el("h2", {text: m.name + " " + m.version})]);
    var chart = ccl.el("div", {className: "chart"});
    card.appendChild(chart);
    grid.appendChild(card);
    if (!points.length) { chart.appendChild(ccl.el("p", {className: "muted", text: t("없음", "none")})); return; }
    cclCharts.timeLines(chart, points.map(function (p) { return Date.parse(p.recorded_at) / 1000; }),
      METRICS.map(function (k) { return {label: t(k[1], k[2]), colour: k[3], values: points.map(function (p) { return p[k[0]]; })}; }),
      {range: [0, 1]});
  });

  var message = document.getElementById("model-message");
  document.getElementById("models").addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button.deploy");
    if (!button || !window.confirm(holder.getAttribute("data-confirm"))) { return; }
    button.disabled = true;
    ccl.api("/api/models/" + button.getAttribute("data-model") + "/deploy", {method: "POST", body: {}})
      .then(function () { window.location.reload(); })
      .catch(function (error) {
        message.hidden = false; message.className = "notice bad";
        message.textContent = error.message; button.disabled = false;
      });
  });
})();
