// gatehouse settings: copy buttons, confirmation prompts, and times in the reader's own
// time zone. No inline scripts (CSP).
"use strict";
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
