// gatehouse Telegram: the link page learns of the link, and the second step learns of
// the tap in Telegram, by long-polling; no reload needed. No inline scripts (CSP).
"use strict";
(function () {
  function poll(url, onAnswer) {
    fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(onAnswer, function () { setTimeout(function () { poll(url, onAnswer); }, 2000); });
  }

  var link = document.querySelector("[data-telegram-link]");
  if (link) {
    var before = Number(link.dataset.before);
    var url = link.dataset.statusUrl + "?before=" + before;
    var check = function (answer) {
      if (answer.count > before) {
        var names = answer.accounts.slice(before).join(", ");
        link.querySelector("[data-link-state]").textContent = link.dataset.doneText.replace("{}", names);
        link.querySelector("[data-link-continue]").hidden = false;
        // The first account turns confirmation on: say so in the section too.
        var badge = document.querySelector("#telegram-title .badge");
        if (badge && before === 0) {
          badge.className = "badge on";
          badge.textContent = link.dataset.onText;
        }
        var none = document.getElementById("telegram-none");
        if (none) none.hidden = true;
      } else {
        poll(url, check);
      }
    };
    poll(url, check);
  }

  var start = document.querySelector("form[data-telegram-autostart]");
  if (start) start.submit();

  var wait = document.querySelector("[data-telegram-wait]");
  if (wait) {
    var waitUrl = wait.dataset.waitUrl;
    var react = function (answer) {
      if (answer.status === "pending") return poll(waitUrl, react);
      if (answer.status === "confirmed") return wait.querySelector("form").submit();
      var detail = answer.status === "refused" ? answer.reason : answer.status;
      var target = new URL(window.location.href);
      target.searchParams.set("telegram", detail);
      window.location.replace(target.toString());
    };
    poll(waitUrl, react);
  }
})();
