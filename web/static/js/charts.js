/* Charts on the vendored uPlot (/static/vendor/uplot). No build step, no CDN. */
(function () {
  "use strict";

  function width(el) { return Math.max(200, el.clientWidth || el.parentNode.clientWidth || 600); }

  var TIME = new Intl.DateTimeFormat("sv-SE", {timeZone: "Asia/Seoul", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});

  /* Axis labels of a time scale in plant time, 24 h: seconds only for short spans, the date
     only when the span covers more than a day. */
  function timeValues(u, splits) {
    var span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
    return splits.map(function (v) {
      var text = TIME.format(new Date(v * 1000));  // "MM-DD HH:MM:SS"
      if (span > 86400) { return text.slice(0, 11); }
      return span < 300 ? text.slice(6) : text.slice(6, 11);
    });
  }
  var COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1e6];

  function resizeWith(el, plot, height) {
    window.addEventListener("resize", function () { plot.setSize({width: width(el), height: height}); });
  }

  /* A time series: times in epoch seconds. */
  function timeLine(el, options) {
    var height = options.height || 220;
    var plot = new uPlot({
      width: width(el), height: height, legend: {show: false},
      scales: {x: {time: true}, y: {range: function (u, min, max) { return [0, Math.max(10, max * 1.15)]; }}},
      axes: [{stroke: "#5d6670", values: timeValues, space: 60}, {stroke: "#5d6670", label: options.unit || "", size: 55}],
      series: [{}, {label: options.label || "", stroke: options.colour || "#1f6feb", width: 2,
                    fill: options.fill || "rgba(31,111,235,0.08)", points: {show: false}}]
    }, [options.x || [], options.y || []], el);
    resizeWith(el, plot, height);
    return plot;
  }

  /* Bars over named categories; series: [{label, values, colour}], stacked when options.stacked. */
  function bars(el, categories, series, options) {
    options = options || {};
    var height = options.height || 260;
    var x = categories.map(function (_, i) { return i; });
    var data = [x];
    var shown = series.map(function (s) { return s.values.slice(); });
    if (options.stacked) {
      for (var k = 1; k < shown.length; k++) {
        for (var i = 0; i < x.length; i++) { shown[k][i] = (shown[k][i] || 0) + (shown[k - 1][i] || 0); }
      }
    }
    shown.slice().reverse().forEach(function (values) { data.push(values); });
    var ordered = series.slice().reverse();
    var barPath = uPlot.paths.bars({size: [0.7, 60]});
    var uSeries = [{}].concat(ordered.map(function (s) {
      return s.line ? {label: s.label, stroke: s.colour, width: 2, points: {show: true, size: 6, fill: s.colour}, scale: s.scale || "y"}
                    : {label: s.label, stroke: s.colour, fill: s.colour, width: 0, paths: barPath, points: {show: false}};
    }));
    var scales = {x: {time: false, range: function () { return [-0.6, x.length - 0.4]; }},
                  y: {range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; }}};
    var axes = [{stroke: "#5d6670", space: 10, rotate: options.rotate || 0, size: options.xSize || 50,
                 values: function (u, splits) { return splits.map(function (v) { return categories[v] !== undefined && v === Math.round(v) ? categories[v] : ""; }); },
                 splits: function () { return x; }},
                {stroke: "#5d6670", size: 55, incrs: COUNTS}];
    if (options.share) {
      scales.share = {range: [0, 1]};
      axes.push({scale: "share", side: 1, stroke: "#5d6670", grid: {show: false},
                 values: function (u, splits) { return splits.map(function (v) { return Math.round(v * 100) + "%"; }); }});
    }
    uSeries[0] = {label: options.xLabel || ""};
    var plot = new uPlot({width: width(el), height: height, legend: {show: series.length > 1, live: false}, scales: scales,
                          axes: axes, series: uSeries, cursor: {points: {show: false}}}, data, el);
    resizeWith(el, plot, height);
    return plot;
  }

  /* Several series over time, e.g. model metrics: series [{label, values, colour}]. */
  function timeLines(el, x, series, options) {
    options = options || {};
    var height = options.height || 220;
    var plot = new uPlot({width: width(el), height: height, legend: {live: false},
      scales: {x: {time: true}, y: options.range ? {range: options.range} : {}},
      axes: [{stroke: "#5d6670", values: timeValues, space: 70}, {stroke: "#5d6670", size: 45}],
      series: [{label: ""}].concat(series.map(function (s) {
        return {label: s.label, stroke: s.colour, width: 1.5, points: {show: false}};
      }))}, [x].concat(series.map(function (s) { return s.values; })), el);
    resizeWith(el, plot, height);
    return plot;
  }

  window.cclCharts = {timeLine: timeLine, timeLines: timeLines, bars: bars};
})();
