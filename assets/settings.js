// gatehouse settings: copy buttons, confirmation prompts, and times in the reader's own
// time zone. No inline scripts (CSP).
"use strict";
// What was typed into a form is kept for this tab until the form is answered: when the
// session ended meanwhile, signing in again brings the user back to a form that still
// holds it. Passwords and codes are never kept.
(function () {
  var KEY = "gatehouse-typed";
  var keepable = function (input) {
    return input.name && !input.readOnly &&
      ["text", "email", "tel", "url", ""].indexOf(input.getAttribute("type") || "") >= 0 &&
      input.autocomplete !== "one-time-code";
  };
  document.addEventListener("submit", function (event) {
    var form = event.target, typed = {};
    form.querySelectorAll("input").forEach(function (input) {
      if (keepable(input) && input.value) typed[input.name] = input.value;
    });
    try {
      sessionStorage.setItem(KEY, JSON.stringify({ action: form.getAttribute("action"), typed: typed }));
    } catch (e) { /* storage off: nothing kept */ }
  });
  var kept;
  try {
    kept = JSON.parse(sessionStorage.getItem(KEY) || "null");
    sessionStorage.removeItem(KEY);
  } catch (e) {
    return;
  }
  // A form answered (done=…) needs nothing back.
  if (!kept || location.search.indexOf("done=") >= 0) return;
  var form = document.querySelector('form[action="' + kept.action + '"]');
  if (!form) return;
  Object.keys(kept.typed).forEach(function (name) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (input && keepable(input) && !input.value) input.value = kept.typed[name];
  });
  var section = form.closest("details");
  if (section) section.open = true;
})();
// A link to a section (settings#backup-title) opens it.
(function () {
  var openTarget = function () {
    var target = location.hash && document.getElementById(location.hash.slice(1));
    var section = target && target.closest("details");
    if (section) section.open = true;
  };
  openTarget();
  window.addEventListener("hashchange", openTarget);
})();
// The server writes times in UTC, saying so; here they become the reader's local time,
// in the page's language (the ISO form stays in the title).
(function () {
  if (!window.Intl || !Intl.DateTimeFormat) return;
  var format;
  try {
    format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      dateStyle: "medium",
      timeStyle: "short"
    });
  } catch (e) {
    return;
  }
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) return;
    el.title = el.textContent;
    el.textContent = format.format(when);
  });
})();
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  // Without the Clipboard API (plain HTTP, older browsers): select the codes, so that
  // one keystroke copies them, and say so.
  var selectThem = function () {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = button.getAttribute("data-selected") || button.textContent;
  };
  if (!navigator.clipboard) return selectThem();
  navigator.clipboard.writeText(source.innerText.trim()).then(function () {
    button.textContent = button.getAttribute("data-copied");
  }, selectThem);
});
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
