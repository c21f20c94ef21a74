// gatehouse settings: copy buttons and confirmation prompts. No inline scripts (CSP).
"use strict";
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
