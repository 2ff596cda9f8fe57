/* 통계: Pareto (bars + cumulative share), daily trend by severity (stacked), customers, confidence histogram. */
(function () {
  "use strict";
  var s = JSON.parse(document.getElementById("stats-state").textContent), t = ccl.t, F = cclFormat;
  function $(id) { return document.getElementById(id); }
  function empty(el) { el.appendChild(ccl.el("p", {className: "muted", text: t("결과 없음", "No results")})); }

  if (s.pareto.length) {
    cclCharts.bars($("pareto"), s.pareto.map(function (p) { return p.defect_type; }), [
      {label: t("결함 수", "Defects"), values: s.pareto.map(function (p) { return p.n; }), colour: "#1f6feb"},
      {label: t("누적 비율", "Cumulative share"), values: s.pareto.map(function (p) { return p.cumulative; }),
       colour: "#c62828", line: true, scale: "share"}], {share: true, rotate: -30, xSize: 70});
  } else { empty($("pareto")); }

  if (s.daily.length) {
    var days = s.daily.map(function (d) { return d.day.slice(5); });
    cclCharts.bars($("daily"), days, [
      {label: F.severity("low"), values: s.daily.map(function (d) { return d.low; }), colour: "#8c959f"},
      {label: F.severity("medium"), values: s.daily.map(function (d) { return d.medium; }), colour: "#e0a030"},
      {label: F.severity("high"), values: s.daily.map(function (d) { return d.high; }), colour: "#e06040"},
      {label: F.severity("critical"), values: s.daily.map(function (d) { return d.critical; }), colour: "#a01010"}],
      {stacked: true, rotate: -45, xSize: 50});
  } else { empty($("daily")); }

  if (s.by_customer.length) {
    var top = s.by_customer.slice(0, 12);
    cclCharts.bars($("customers"), top.map(function (c) { return c.customer_name || "—"; }),
      [{label: t("결함 수", "Defects"), values: top.map(function (c) { return c.n; }), colour: "#2ca02c"}], {rotate: -30, xSize: 70});
  } else { empty($("customers")); }

  if (s.total) {
    cclCharts.bars($("confidence"), s.confidence.map(function (b) { return Math.round(b.low * 100) + ""; }),
      [{label: t("결함 수", "Defects"), values: s.confidence.map(function (b) { return b.n; }), colour: "#9467bd"}], {xSize: 40});
  } else { empty($("confidence")); }
})();
