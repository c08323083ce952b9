// The review page: a deck of held cards, answered with one key each.
//
// The first card of #deck is the one on screen; the next one is already in the page (prefetched), so a
// key press shows it at once. The answer goes into an outbox kept in localStorage and is sent in the
// background, one request at a time, in order. A request that fails for a network or server reason stays
// in the outbox and is retried; a closed tab sends it on the next visit. Each answer carries the lease
// token of its card, so sending it twice records it once.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("review-config").textContent);
  const deck = document.getElementById("deck");
  const loading = document.getElementById("loading");
  const empty = document.getElementById("empty");
  const help = document.getElementById("help");
  const zoom = document.getElementById("zoom");
  const paused = document.getElementById("paused");
  const notices = document.getElementById("notices");
  const saveStatus = document.getElementById("save-status");
  const sessionCount = document.getElementById("session-count");
  const csrfToken = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";

  const outboxKey = `twin-review-outbox:${config.user}:${config.kind}`;
  const actionByKey = {};
  for (const [name, key] of Object.entries(config.keys)) actionByKey[key] = name;

  let outbox = loadOutbox();
  let sending = false;
  let retryDelay = 1000;
  let retryTimer = null;
  let shownTask = null;
  let shownAt = performance.now();
  let lastActivity = Date.now();
  let isPaused = false;
  let waitingForCards = false;
  let decided = 0;
  const startedAt = Date.now();

  // --- outbox ---------------------------------------------------------------------------------------

  function loadOutbox() {
    try {
      return JSON.parse(localStorage.getItem(outboxKey) || "[]");
    } catch {
      return [];
    }
  }

  function saveOutbox() {
    try {
      localStorage.setItem(outboxKey, JSON.stringify(outbox));
    } catch {
      // Storage full or disabled: the outbox still lives in memory for this page.
    }
  }

  function pendingIds() {
    return outbox.map((entry) => String(entry.task));
  }

  function deckIds() {
    return [...deck.querySelectorAll(".review-card")].map((card) => card.dataset.task);
  }

  function have() {
    return [...new Set([...deckIds(), ...pendingIds()])].join(",");
  }

  async function post(url, fields) {
    const body = new URLSearchParams({ ...fields, have: have() });
    return fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
    });
  }

  // Sends the outbox in order. Business refusals (lease lost, task closed) are shown and dropped; network
  // and server failures keep the entry and retry with backoff.
  async function flush() {
    if (sending || isPaused) return;
    sending = true;
    clearTimeout(retryTimer);
    while (outbox.length) {
      const entry = outbox[0];
      showSaveStatus();
      let response;
      let data = null;
      try {
        response = await post(entry.url, entry.fields);
        if ((response.headers.get("Content-Type") || "").includes("application/json")) data = await response.json();
      } catch {
        response = null;
      }
      if (!response || response.status >= 500 || response.status === 429 || (!data && response.ok)) {
        const signedOut = response && response.redirected && response.url.includes("/login");
        // A server that is up but can't reach its database says so (code "database_unavailable").
        const reason = signedOut
          ? "You were signed out: sign in again in another tab."
          : (data && data.message) || "The server can't be reached.";
        failLater(reason);
        return;
      }
      if (response.status === 403) {
        failLater("You are not allowed to review here any more.");
        return;
      }
      outbox.shift();
      saveOutbox();
      retryDelay = 1000;
      if (!data || !data.ok) notify((data && data.message) || "That answer was not recorded.", "error");
      if (data && data.cards !== undefined) addCards(data.cards, data.held);
    }
    sending = false;
    showSaveStatus();
    afterDeckChange();
  }

  function failLater(reason) {
    sending = false;
    const seconds = Math.round(retryDelay / 1000);
    saveStatus.className = "save-status failed";
    saveStatus.textContent = `${outbox.length} not saved yet. ${reason} Retrying in ${seconds} s`;
    retryTimer = setTimeout(flush, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
    afterDeckChange();
  }

  function showSaveStatus() {
    if (!outbox.length) {
      saveStatus.className = "save-status saved";
      saveStatus.textContent = "All saved";
    } else {
      saveStatus.className = "save-status saving";
      saveStatus.textContent = `Saving ${outbox.length}…`;
    }
  }

  // --- the deck ----------------------------------------------------------------------------------------

  function addCards(html, held) {
    const known = new Set([...deckIds(), ...pendingIds()]);
    if (html) {
      const template = document.createElement("template");
      template.innerHTML = html;
      for (const card of template.content.querySelectorAll(".review-card")) {
        if (!known.has(card.dataset.task)) {
          deck.appendChild(card);
          known.add(card.dataset.task);
        }
      }
    }
    if (held) waitingForCards = false;
    afterDeckChange();
  }

  function currentCard() {
    return deck.querySelector(".review-card");
  }

  function afterDeckChange() {
    const card = currentCard();
    if (card && card.dataset.task !== shownTask) {
      shownTask = card.dataset.task;
      shownAt = performance.now();
      card.scrollIntoView({ block: "nearest" });
    }
    const busy = sending || outbox.length > 0 || waitingForCards;
    loading.hidden = Boolean(card) || !busy;
    empty.hidden = Boolean(card) || busy;
    if (!card && !busy) shownTask = null;
  }

  function takeCurrent(type, fields) {
    const card = currentCard();
    if (!card) return;
    card.remove();
    outbox.push({
      type,
      task: card.dataset.task,
      url: config.urls[type],
      fields: { task: card.dataset.task, key: card.dataset.key, ...fields },
      html: card.outerHTML,
    });
    saveOutbox();
    showSaveStatus(); // counts this answer too while an earlier one is still being sent
    afterDeckChange();
    flush();
  }

  function decide(action) {
    const card = currentCard();
    if (!card || !card.querySelector(`[data-action="${action}"]`)) return;
    const duration = Math.round(performance.now() - shownAt);
    takeCurrent("decide", { action, duration_ms: duration });
    decided += 1;
    showSessionCount();
  }

  function showSessionCount() {
    const minutes = (Date.now() - startedAt) / 60000;
    sessionCount.textContent = `${decided} done` + (minutes >= 1 ? ` · ${(decided / minutes).toFixed(1)}/min` : "");
  }

  function skip() {
    takeCurrent("skip", {});
  }

  // Undo: an answer still in the outbox is taken back here; one already saved is withdrawn on the server.
  async function undo() {
    const inFlight = sending ? outbox[0] : null;
    const last = outbox[outbox.length - 1];
    if (last && last !== inFlight) {
      outbox.pop();
      saveOutbox();
      if (last.type === "decide") decided = Math.max(0, decided - 1);
      showSessionCount();
      restoreCard(last.html);
      notify("Taken back before it was sent.", "info");
      showSaveStatus();
      return;
    }
    await drained();
    let response;
    try {
      response = await post(config.urls.undo, {});
    } catch {
      notify("Undo failed: the server can't be reached. Try again.", "error");
      return;
    }
    const data = await response.json().catch(() => null);
    if (!data || !data.ok) {
      notify((data && data.message) || "Undo failed.", "error");
      return;
    }
    decided = Math.max(0, decided - 1);
    showSessionCount();
    if (data.card) restoreCard(data.card);
    notify(data.message, "info");
  }

  function restoreCard(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const card = template.content.querySelector(".review-card");
    if (!card) return;
    deck.querySelector(`.review-card[data-task="${card.dataset.task}"]`)?.remove();
    deck.prepend(card);
    afterDeckChange();
  }

  function drained() {
    return new Promise((resolve) => {
      const check = () => (outbox.length === 0 && !sending ? resolve() : setTimeout(check, 50));
      check();
    });
  }

  async function refill() {
    waitingForCards = true;
    afterDeckChange();
    try {
      const response = await fetch(`${config.urls.cards}?have=${encodeURIComponent(have())}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const data = await response.json();
      addCards(data.cards, data.held);
    } catch {
      waitingForCards = false;
      afterDeckChange();
    }
  }

  // --- heartbeat and idling ----------------------------------------------------------------------------

  async function heartbeat() {
    if (isPaused) return;
    if (Date.now() - lastActivity > config.idleSeconds * 1000) {
      pause();
      return;
    }
    let data;
    try {
      const response = await post(config.urls.heartbeat, {});
      data = await response.json();
    } catch {
      return; // the next beat tries again; the lease has room for a few missed beats
    }
    for (const lost of data.lost || []) {
      if (pendingIds().includes(String(lost))) continue;
      const card = deck.querySelector(`.review-card[data-task="${lost}"]`);
      if (card) {
        card.remove();
        notify(`Task #${lost} went to someone else while you were away.`, "info");
      }
    }
    if (deck.querySelectorAll(".review-card").length < 2) refill();
  }

  function pause() {
    isPaused = true;
    paused.hidden = false;
  }

  // --- notices, overlays -------------------------------------------------------------------------------

  function notify(message, tone) {
    const item = document.createElement("div");
    item.className = `notice ${tone}`;
    item.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "×";
    close.setAttribute("aria-label", "dismiss");
    close.addEventListener("click", () => item.remove());
    item.appendChild(close);
    notices.appendChild(item);
    if (tone !== "error") setTimeout(() => item.remove(), 6000);
  }

  function openZoom(src) {
    zoom.querySelector("img").src = src;
    zoom.hidden = false;
  }

  function closeOverlays() {
    help.hidden = true;
    zoom.hidden = true;
  }

  // --- input ---------------------------------------------------------------------------------------------

  function run(name) {
    if (name === "help") {
      zoom.hidden = true;
      help.hidden = !help.hidden;
    } else if (name === "undo") {
      undo();
    } else if (name === "skip") {
      skip();
    } else {
      decide(name);
    }
  }

  document.addEventListener("keydown", (event) => {
    lastActivity = Date.now();
    if (isPaused) {
      window.location.reload();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select")) return;
    if (event.key === "Escape") {
      closeOverlays();
      return;
    }
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const name = actionByKey[key];
    if (!name) return;
    event.preventDefault();
    // A held-down key repeats; one press is one answer.
    if (event.repeat) return;
    if (name !== "help" && !help.hidden) help.hidden = true;
    if (!zoom.hidden && name !== "help") zoom.hidden = true;
    run(name);
  });

  document.addEventListener("click", (event) => {
    lastActivity = Date.now();
    const button = event.target.closest("[data-action], [data-command]");
    if (button) {
      const card = button.closest(".review-card");
      if (card && card !== currentCard()) return;
      run(button.dataset.action || button.dataset.command);
      return;
    }
    const image = event.target.closest("img[data-full]");
    if (image && !zoom.contains(image)) {
      openZoom(image.dataset.full);
      return;
    }
    if (event.target.closest(".overlay") && !event.target.closest(".overlay-box")) closeOverlays();
  });

  document.addEventListener("pointermove", () => {
    lastActivity = Date.now();
  });

  window.addEventListener("online", flush);

  // Answers given on this page in an earlier visit that never reached the server: their cards may be in
  // the page again (the server still holds them for us), so hide those and send the answers first.
  for (const id of pendingIds()) deck.querySelector(`.review-card[data-task="${id}"]`)?.remove();
  if (outbox.length) {
    notify(`Sending ${outbox.length} answer${outbox.length > 1 ? "s" : ""} from before the page was reloaded.`, "info");
  }
  afterDeckChange();
  flush();
  setInterval(heartbeat, config.heartbeatSeconds * 1000);
})();
