// The admin pages' only script, served from their own origin (the CSP allows
// nothing else). Two things:
//  - <main data-refresh="N"> is reloaded every N seconds from the same URL, so the
//    operator's filters stay; not while a form field has the focus or an edit form
//    is open, nor while the tab is hidden.
//  - a form with data-confirm="..." is sent only once the operator confirms.
// Without it the pages still work; they just do not refresh or ask.
(function () {
  "use strict";

  // A notice belongs to the action that caused it: drop it from the address so
  // the next refresh does not show it again.
  var url = new URL(window.location.href);
  if (url.searchParams.has("notice") || url.searchParams.has("error")) {
    url.searchParams.delete("notice");
    url.searchParams.delete("error");
    window.history.replaceState(null, "", url.toString());
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function busy(main) {
    var active = document.activeElement;
    if (active && main.contains(active) &&
        /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) {
      return true;
    }
    return main.querySelector("details[open]") !== null;
  }

  function refresh() {
    var main = document.querySelector("main[data-refresh]");
    if (!main || document.hidden || busy(main)) {
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        // Signed out meanwhile: the answer is the sign-in form; leave the page be.
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null || busy(main)) {
          return;
        }
        var fresh = new DOMParser()
          .parseFromString(html, "text/html")
          .querySelector("main[data-refresh]");
        if (fresh) {
          main.replaceWith(document.adoptNode(fresh));
        }
      })
      .catch(function () {
        // The server is unreachable for a moment: the next tick tries again.
      });
  }

  var main = document.querySelector("main[data-refresh]");
  if (main) {
    var seconds = Number(main.getAttribute("data-refresh")) || 10;
    window.setInterval(refresh, seconds * 1000);
  }
})();
