// The workspace's one script: it only makes pages that already work without it quicker to use. Served by the
// service itself (CSP script-src 'self'); every hook is a data attribute the page sets, so a page without the
// attribute is left as it is.
//
// - data-live-preview on a form: re-renders the page's region of the same id (data-live-preview="previews") as
//   the person types, through the form's own action (the same render the preview button asks for).
// - data-check on the YAML policy editor: validates the draft as the person types (the URL answers the errors
//   with their lines as JSON) and lists them, each a button that goes to its line.
// - data-confirm on a form: asks before submitting (publishing a policy, replaying every dead letter).
// - a table or text wider than a phone scrolls in its own box (CSS); such a box is made reachable by keyboard
//   (tabindex 0) while it is wider than the screen, so a keyboard can scroll it as a mouse can.
"use strict";

(function () {
  var DELAY_MS = 500; // after the last key: a preview per pause, not per key

  function debounced(fn) {
    var timer = null;
    return function () {
      if (timer !== null) window.clearTimeout(timer);
      timer = window.setTimeout(function () { timer = null; fn(); }, DELAY_MS);
    };
  }

  function posted(form) {
    return new URLSearchParams(new FormData(form));
  }

  // Only the latest answer is shown: an earlier, slower one must not overwrite it.
  function latestOnly(run) {
    var sent = 0;
    return function () {
      var mine = ++sent;
      return run().then(function (answer) { return mine === sent ? answer : null; });
    };
  }

  function livePreview(form) {
    var region = document.getElementById(form.getAttribute("data-live-preview"));
    if (!region) return;
    var fetchPreview = latestOnly(function () {
      region.setAttribute("aria-busy", "true");
      return fetch(form.action, {
        method: "POST", body: posted(form), credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" }
      }).then(function (r) { return r.text(); });
    });
    var update = debounced(function () {
      fetchPreview().then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (fresh) region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes));
      }).catch(function () { /* the preview button still works */ }).finally(function () {
        region.removeAttribute("aria-busy");
      });
    });
    form.addEventListener("input", update);
  }

  function goToLine(area, line) {
    var lines = area.value.split("\n");
    var start = 0;
    for (var n = 0; n < line - 1 && n < lines.length; n++) start += lines[n].length + 1;
    var end = start + (lines[line - 1] || "").length;
    area.focus();
    area.setSelectionRange(start, end);
  }

  function liveCheck(form) {
    var area = form.querySelector("textarea[name=draft]");
    var out = document.getElementById(form.getAttribute("data-check-region"));
    if (!area || !out) return;
    var check = latestOnly(function () {
      var body = new URLSearchParams();
      body.set("csrf_token", form.querySelector("input[name=csrf_token]").value);
      body.set("draft", area.value);
      return fetch(form.getAttribute("data-check"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" }
      }).then(function (r) { return r.ok ? r.json() : null; });
    });
    var update = debounced(function () {
      check().then(function (answer) {
        if (answer === null) return;
        out.replaceChildren();
        var errors = answer.errors || [];
        if (errors.length === 0) {
          area.removeAttribute("aria-invalid");
          out.textContent = answer.ok_text || "";
          return;
        }
        area.setAttribute("aria-invalid", "true");
        var list = document.createElement("ul");
        errors.forEach(function (e) {
          var item = document.createElement("li");
          item.className = "error";
          if (e.line) {
            var go = document.createElement("button");
            go.type = "button";
            go.className = "link";
            go.textContent = e.text;
            go.setAttribute("data-line", String(e.line));
            go.addEventListener("click", function () { goToLine(area, e.line); });
            item.appendChild(go);
          } else {
            item.textContent = e.text;
          }
          list.appendChild(item);
        });
        out.appendChild(list);
      }).catch(function () { /* the preview button still validates */ });
    });
    area.addEventListener("input", update);
  }

  function confirmFirst(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  }

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function reachableScrollers() {
    each(".table-scroll, main table, main pre", function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        if (!box.hasAttribute("tabindex")) {
          box.setAttribute("tabindex", "0");
          box.setAttribute("data-scroll-box", "");
        }
      } else if (box.hasAttribute("data-scroll-box")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-box");
      }
    });
  }

  function start() {
    reachableScrollers();
    window.addEventListener("resize", debounced(reachableScrollers));
    each("form[data-live-preview]", livePreview);
    each("form[data-check]", liveCheck);
    each("form[data-confirm]", confirmFirst);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
