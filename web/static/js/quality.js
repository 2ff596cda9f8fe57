/* 관리 > 품질: the rule book editor. 미리보기 posts the draft to /api/admin/rule-book/preview and
   lists the recently graded coils it would change; 저장 makes it a new active version. */
(function () {
  "use strict";
  var t = ccl.t;
  function $(id) { return document.getElementById(id); }
  var errors = $("book-errors"), result = $("book-result");

  function showErrors(error) {
    var details = error.body && error.body.details;
    errors.textContent = "";
    errors.hidden = false;
    var list = ccl.el("ul");
    if (details && typeof details === "object") {
      Object.keys(details).forEach(function (path) { list.appendChild(ccl.el("li", {"data-path": path, text: path + ": " + details[path]})); });
    } else {
      list.appendChild(ccl.el("li", {text: (error.body && error.body.error) || error.message}));
    }
    errors.appendChild(list);
  }

  function draft() { return {document: $("book-text").value, comment: $("book-comment").value}; }

  function decision(d) { return d.grade + " / " + d.disposition; }

  $("book-preview").addEventListener("click", function () {
    errors.hidden = true;
    result.textContent = "…";
    ccl.api("/api/admin/rule-book/preview", {method: "POST", body: draft()}).then(function (value) {
      result.textContent = "";
      var changes = value.changes;
      result.appendChild(ccl.el("p", {id: "preview-summary", "data-changes": changes.length,
        text: t("최근 판정된 코일 " + value.coils + "개 중 " + changes.length + "개가 바뀝니다.",
                changes.length + " of the " + value.coils + " most recently graded coils would change.")}));
      if (!changes.length) { return; }
      var body = ccl.el("tbody");
      changes.forEach(function (c) {
        body.appendChild(ccl.el("tr", {"data-coil": c.tracked_coil}, [
          ccl.el("td", {}, [ccl.el("a", {href: "/coils/" + encodeURIComponent(c.tracked_coil.split("#")[0]), text: c.tracked_coil})]),
          ccl.el("td", {className: "before", text: decision(c.before)}),
          ccl.el("td", {className: "after", text: decision(c.after)}),
          ccl.el("td", {className: "small", text: c.reasons.join(" · ")})]));
      });
      result.appendChild(ccl.el("table", {className: "grid compact", id: "preview-table"}, [
        ccl.el("thead", {}, [ccl.el("tr", {}, [ccl.el("th", {text: t("코일", "Coil")}), ccl.el("th", {text: t("현재", "Now")}),
          ccl.el("th", {text: t("변경 후", "After")}), ccl.el("th", {text: t("사유", "Reasons")})])]), body]));
    }).catch(function (error) { result.textContent = ""; showErrors(error); });
  });

  $("book-save").addEventListener("click", function () {
    errors.hidden = true;
    ccl.api("/api/admin/rule-book", {method: "POST", body: draft()}).then(function (value) {
      var v = $("book-version");
      v.setAttribute("data-version", value.version);
      v.textContent = "v" + value.version;
      result.textContent = "";
      result.appendChild(ccl.el("p", {className: "notice ok", id: "saved-version",
        text: t("v" + value.version + " 저장, 활성화되었습니다.", "Saved as v" + value.version + ", now active.")}));
    }).catch(showErrors);
  });
})();
