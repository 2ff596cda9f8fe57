/* Coil detail: speed chart, coil map, sortable defect table with the operator actions
   (confirm / false positive / reclassify, with a comment; POST /api/defects/<id>/review),
   gallery -> viewer. */
(function () {
  "use strict";
  var F = cclFormat, t = ccl.t;
  var state = JSON.parse(document.getElementById("coil-state").textContent);
  var REVIEW = {confirmed: ["확인", "Confirmed"], false_positive: ["오검출", "False positive"],
                reclassified: ["재분류", "Reclassified"], "new": ["미검토", "New"]};

  if (state.speed.length) {
    cclCharts.timeLine(document.getElementById("coil-speed"), {
      x: state.speed.map(function (p) { return Date.parse(p.t) / 1000; }),
      y: state.speed.map(function (p) { return p.v; }), label: t("라인 속도", "Line speed"), unit: "m/min"});
  }

  function highlight(defect) {
    var row = document.querySelector('#defects tr[data-defect="' + defect.id + '"]');
    if (!row) { return; }
    row.scrollIntoView({block: "center"});
    row.classList.remove("fresh"); void row.offsetWidth; row.classList.add("fresh");
  }
  cclCoil.map(document.getElementById("coil-map"), {coil: state.schedule, coilNumber: state.coil, tracking: state.tracking,
                                                     defects: state.defects, weldZone: state.weld_zone_m}, highlight);
  cclCoil.series(document.getElementById("coil-map"), state.series);
  cclCoil.legend(document.getElementById("map-legend"), state.defects);

  /* 수동 판정: the operator's grade over the computed one, with a reason (audited). */
  Array.prototype.forEach.call(document.querySelectorAll("form.grade-override"), function (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      ccl.api("/api/coils/" + encodeURIComponent(state.coil) + "/grade", {method: "POST", body: {
        tracked_coil: form.getAttribute("data-tracked-coil"), grade: form.elements.grade.value,
        disposition: form.elements.disposition.value, reason: form.elements.reason.value}})
        .then(function () { window.location.reload(); })
        .catch(function (error) { window.alert((error.body && (error.body.error + (error.body.details ? ": " + JSON.stringify(error.body.details) : ""))) || error.message); });
    });
  });
  cclTables.sortable(document.getElementById("defects"));

  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest(".open-image");
    if (link) { e.preventDefault(); cclViewer.open(link.getAttribute("data-image")); }
  });
  var greyButton = document.getElementById("gallery-grey"), grey = false;
  greyButton.addEventListener("click", function () {
    grey = !grey;
    document.getElementById("gallery").classList.toggle("grey", grey);
    greyButton.textContent = greyButton.getAttribute(grey ? "data-colour" : "data-grey");
  });

  var table = document.getElementById("defects");
  if (table.getAttribute("data-can-review") !== "yes") { return; }

  function reviewCell(row) {
    var id = row.getAttribute("data-defect");
    var cell = row.querySelector(".review-cell");
    var comment = ccl.el("input", {type: "text", placeholder: t("의견", "Comment"), maxlength: "1000", size: "10"});
    var types = ccl.el("select", {hidden: "hidden"});
    state.defect_types.forEach(function (name) { types.appendChild(ccl.el("option", {value: name, text: name})); });
    function send(action) {
      var body = {action: action, comment: comment.value};
      if (action === "reclassify") {
        if (types.hidden) { types.hidden = false; types.focus(); return; }
        body.defect_type = types.value;
      }
      cell.classList.add("busy");
      ccl.api("/api/defects/" + id + "/review", {method: "POST", body: body}).then(function (result) {
        var d = result.defect;
        var label = REVIEW[d.review_status] || [d.review_status];
        row.querySelector(".review-state").textContent = t(label[0], label[1]) + " " + (d.reviewed_by || "");
        row.querySelector(".type-cell").textContent = d.defect_type +
          (d.original_defect_type && d.original_defect_type !== d.defect_type ? " (" + d.original_defect_type + ")" : "");
        types.hidden = true; comment.value = "";
        row.classList.remove("fresh"); void row.offsetWidth; row.classList.add("fresh");
      }).catch(function (error) {
        window.alert((error.body && (error.body.error + (error.body.details ? ": " + JSON.stringify(error.body.details) : ""))) || error.message);
      }).then(function () { cell.classList.remove("busy"); });
    }
    [["confirm", "확인", "Confirm"], ["false_positive", "오검출", "False positive"], ["reclassify", "재분류", "Reclassify"]]
      .forEach(function (a) {
        var b = ccl.el("button", {type: "button", "data-action": a[0]}, [t(a[1], a[2])]);
        b.addEventListener("click", function () { send(a[0]); });
        cell.appendChild(b);
      });
    cell.appendChild(types);
    cell.appendChild(comment);
  }
  Array.prototype.forEach.call(table.querySelectorAll("tr[data-defect]"), reviewCell);
})();
