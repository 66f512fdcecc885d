// The portal's few lines of script: the link's landing page, copy buttons, the test event's
// outcome without a reload, and the per-hour bars. Everything else is plain forms.
(function () {
  "use strict";

  function enter() {
    var form = document.getElementById("enter-form");
    if (!form) return;
    var token = window.location.hash.slice(1);
    // The token leaves the address bar (and the history) before anything else happens.
    window.history.replaceState(null, "", window.location.pathname);
    if (!token) {
      document.getElementById("enter-missing").hidden = false;
      return;
    }
    document.getElementById("enter-token").value = token;
    form.submit();
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = document.querySelector(button.getAttribute("data-copy")).textContent;
        var done = function () { button.textContent = button.getAttribute("data-copied"); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          var area = document.createElement("textarea");
          area.value = text;
          document.body.appendChild(area);
          area.select();
          document.execCommand("copy");
          area.remove();
          done();
        }
      });
    });
  }

  function sendTest() {
    var form = document.querySelector("[data-send-test]");
    if (!form) return;
    var outcome = document.getElementById("test-outcome");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      outcome.textContent = form.getAttribute("data-sending");
      fetch(form.action, {method: "POST", body: new FormData(form), headers: {Accept: "application/json"}, credentials: "same-origin"})
        .then(function (response) { return response.json(); })
        .then(function (sent) {
          if (sent.error) {
            outcome.textContent = sent.error;
            return;
          }
          outcome.textContent = form.getAttribute("data-waiting");
          follow(sent.outcome_url, outcome, form.getAttribute("data-link"), 0);
        })
        .catch(function () { form.submit(); });
    });
  }

  function follow(url, outcome, linkText, round) {
    fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (d) {
        var settled = d.status !== "pending" || d.attempt_count > 0;
        if (!settled && round < 60) {
          window.setTimeout(function () { follow(url, outcome, linkText, round + 1); }, 1000);
          return;
        }
        outcome.textContent = "";
        outcome.className = "outcome " + d.status;
        var text = d.status_label + (d.status_code ? " · HTTP " + d.status_code : "") + (d.error ? " · " + d.error : "") + " ";
        outcome.appendChild(document.createTextNode(text));
        var link = document.createElement("a");
        link.href = d.url;
        link.textContent = linkText;
        outcome.appendChild(link);
      });
  }

  function bars() {
    document.querySelectorAll(".bar[data-percent]").forEach(function (bar) {
      bar.style.height = Math.max(Number(bar.getAttribute("data-percent")), 2) + "%";
    });
  }

  // A new link opened where the last one was (an iframe's src changed, only the #fragment
  // differing) is no new page load: load the landing page afresh (a GET) for it.
  window.addEventListener("hashchange", function () {
    if (window.location.hash.length > 1 && /\/portal\/enter$/.test(window.location.pathname)) {
      window.location.replace(window.location.href);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    enter();
    copyButtons();
    sendTest();
    bars();
  });
})();
