/* Formatting and colours shared by the data pages (plant time, numbers, defect colours). */
(function () {
  "use strict";
  var TZ = "Asia/Seoul";
  var dateTime = new Intl.DateTimeFormat("sv-SE", {timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  var timeOnly = new Intl.DateTimeFormat("sv-SE", {timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit",
    hour12: false});
  function when(iso) { return iso ? dateTime.format(new Date(iso)) : ""; }
  function time(iso) { return iso ? timeOnly.format(new Date(iso)) : ""; }
  function num(value, digits) {
    if (value === null || value === undefined || value === "") { return ""; }
    return Number(value).toLocaleString("ko-KR", {minimumFractionDigits: digits || 0, maximumFractionDigits: digits || 0});
  }
  var PALETTE = ["#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#bcbd22", "#7f7f7f"];
  var KNOWN = ["scratch", "dent", "stain", "pinhole", "coating_defect", "edge_crack", "roll_mark", "other"];
  function typeColour(type) {
    var i = KNOWN.indexOf(type);
    if (i < 0) { i = 0; for (var k = 0; k < String(type).length; k++) { i = (i * 31 + String(type).charCodeAt(k)) % 997; } }
    return PALETTE[i % PALETTE.length];
  }
  var SEVERITY = {low: "낮음", medium: "보통", high: "높음", critical: "치명"};
  var SEVERITY_EN = {low: "low", medium: "medium", high: "high", critical: "critical"};
  var SEVERITY_SIZE = {low: 4, medium: 5, high: 7, critical: 9};
  function severity(value) { return (window.ccl && ccl.lang === "en" ? SEVERITY_EN : SEVERITY)[value] || value || ""; }
  window.cclFormat = {when: when, time: time, num: num, typeColour: typeColour, severity: severity,
                      severitySize: function (s) { return SEVERITY_SIZE[s] || 5; }};
})();
