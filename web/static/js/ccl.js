/* Shared helpers of every page: JSON calls with the CSRF header, small DOM helpers.
   No framework, no build step. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  /* ccl.api(url, {method, body}) -> Promise of the parsed JSON; rejects with an Error whose
     .status and .body tell what the server said. 401 sends the browser to the login page. */
  function api(url, options) {
    options = options || {};
    var method = (options.method || "GET").toUpperCase();
    var headers = {"Accept": "application/json"};
    var body;
    if (method !== "GET" && method !== "HEAD") {
      headers["X-CSRF-Token"] = csrf;
      if (options.body !== undefined) {
        headers["Content-Type"] = "application/json";
        body = JSON.stringify(options.body);
      }
    }
    return fetch(url, {method: method, headers: headers, body: body, credentials: "same-origin"})
      .then(function (response) {
        return response.text().then(function (text) {
          var value = null;
          try { value = text ? JSON.parse(text) : null; } catch (e) { value = {error: text}; }
          if (response.status === 401) {
            window.location = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
          }
          if (!response.ok) {
            var error = new Error((value && value.error) || ("HTTP " + response.status));
            error.status = response.status;
            error.body = value;
            throw error;
          }
          return value;
        });
      });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (key === "className") { node.className = attrs[key]; }
      else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  var lang = document.body.getAttribute("data-lang") || "ko";
  /* Pick the label of the current language: ccl.t("확인", "Acknowledge"). */
  function t(korean, english) { return lang === "en" && english ? english : korean; }

  /* <form data-confirm="..."> asks before it is sent (no inline script: the CSP forbids it). */
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  window.ccl = {api: api, el: el, t: t, csrf: csrf, lang: lang};
})();
