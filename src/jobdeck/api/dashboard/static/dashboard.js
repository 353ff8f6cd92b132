// The dashboard's only script: confirmation dialogs, self-refreshing regions, and a
// live run log. It fetches nothing but this dashboard's own pages, with the browser's
// credentials (the session of the login page, when there is one).
(function () {
  "use strict";

  // -- confirmation dialogs: links with data-open show the dialog instead of a new page.
  document.addEventListener("click", function (event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const opener = target.closest("[data-open]");
    if (opener) {
      const dialog = document.getElementById(opener.getAttribute("data-open"));
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        if (dialog.open) dialog.close();
        dialog.showModal();
        const first = dialog.querySelector("textarea, input[type=text]");
        if (first) first.focus();
      }
      return;
    }
    const closer = target.closest("[data-close]");
    if (closer) {
      const dialog = closer.closest("dialog");
      if (dialog) {
        event.preventDefault();
        dialog.close();
      }
    }
  });

  // -- meters: the page carries each share as data (its policy forbids inline style).
  function meters(root) {
    for (const bar of root.querySelectorAll("[data-share]")) {
      bar.style.width = Math.max(0, Math.min(100, Number(bar.getAttribute("data-share")))) + "%";
    }
  }
  meters(document);

  // -- self-refresh: fetch this page again and swap in the fresh [data-live] regions.
  let refreshing = false;

  async function refresh() {
    if (refreshing || document.hidden || document.querySelector("dialog[open]")) return;
    refreshing = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (!response.ok || response.redirected) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of document.querySelectorAll("[data-live][id]")) {
        const replacement = fresh.getElementById(region.id);
        if (replacement && replacement.innerHTML !== region.innerHTML) {
          region.innerHTML = replacement.innerHTML;
          meters(region);
        }
      }
      document.body.removeAttribute("data-stale");
    } catch (error) {
      // The server is restarting or the network is down: say so, try again later.
      document.body.setAttribute("data-stale", "true");
    } finally {
      refreshing = false;
    }
  }

  const every = Number(document.body.getAttribute("data-refresh-ms") || "0");
  if (every > 0) {
    window.setInterval(refresh, every);
    // A tab brought back to the front shows the present at once, not in five seconds.
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) refresh();
    });
  }

  // -- the run log: ask for what was appended since the last offset while the run runs.
  const log = document.getElementById("log");
  if (log && log.getAttribute("data-active") === "true") {
    const url = log.getAttribute("data-log-url");
    const pause = Number(log.getAttribute("data-poll-ms") || "1000");
    let offset = Number(log.getAttribute("data-offset") || "0");

    const follow = async function () {
      let active = true;
      try {
        const response = await fetch(url + "?offset=" + offset, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "application/json" },
        });
        if (response.ok) {
          const piece = await response.json();
          const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          if (piece.start !== offset) log.textContent = "";
          if (piece.text) {
            log.append(piece.text);
            const missing = document.getElementById("log-missing");
            if (missing) missing.remove();
          }
          if (atBottom) log.scrollTop = log.scrollHeight;
          offset = piece.offset;
          log.setAttribute("data-offset", String(offset));
          // Keep reading while a piece came back full: the run may have written a lot.
          active = piece.active || piece.offset > piece.start;
        }
      } catch (error) {
        // Try again at the next turn.
      }
      if (active) {
        window.setTimeout(follow, pause);
      } else {
        log.setAttribute("data-active", "false");
        const badge = document.getElementById("following");
        if (badge) badge.remove();
        refresh();
      }
    };
    window.setTimeout(follow, pause);
  }
})();
