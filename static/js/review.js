// The review page: a deck of held cards, answered with one key each.
//
// The first card of #deck is the one on screen; the next one is already in the page (prefetched), so a
// key press shows it at once. The answer goes into an outbox kept in localStorage and is sent in the
// background, one request at a time, in order. A request that fails for a network or server reason stays
// in the outbox and is retried; a closed tab's outbox is sent by the next page of the queue. Each answer
// carries the lease token of its card, so sending it twice records it once.
//
// An answer goes only to the card that was on screen: a key or click counts once the card has been painted
// and on screen for MIN_SEEN_MS (nobody judges a pair faster), a held-down key's repeats and the second
// click of a double click count for nothing. A different answer to a task already answered (another tab, an
// old page) comes back as a conflict, shown on that card until the annotator keeps the recorded answer or
// changes it.
(() => {
  "use strict";

  const MIN_SEEN_MS = 100;
  // A background tab's timers may run once a minute: a tab silent for longer than this is taken for closed.
  const TAB_ALIVE_MS = 90000;

  const config = JSON.parse(document.getElementById("review-config").textContent);
  const deck = document.getElementById("deck");
  const loading = document.getElementById("loading");
  const empty = document.getElementById("empty");
  const help = document.getElementById("help");
  const paused = document.getElementById("paused");
  const notices = document.getElementById("notices");
  const saveStatus = document.getElementById("save-status");
  const sessionCount = document.getElementById("session-count");
  const csrfToken = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";

  const actionByKey = {};
  for (const [name, key] of Object.entries(config.keys)) actionByKey[key] = name;

  // Each tab keeps its own outbox (two tabs must not overwrite each other's unsent answers); a tab that
  // closed with answers unsent leaves them for the next page of this queue to adopt.
  const outboxPrefix = `twin-review-outbox:${config.user}:${config.kind}`;
  const tabId = tabIdentity();
  const outboxKey = `${outboxPrefix}:${tabId}`;
  const aliveKey = (id) => `twin-review-alive:${config.user}:${config.kind}:${id}`;
  // Answers in conflict that wait for the annotator's choice: shown again after a reload, never dropped.
  const conflictsPrefix = `twin-review-conflicts:${config.user}:${config.kind}`;
  const conflictsKey = `${conflictsPrefix}:${tabId}`;

  let outbox = loadOutbox();
  let conflicts = adoptEntries(conflictsPrefix, conflictsKey, (a, b) => a.task === b.task);
  forgetGoneTabs();
  let sending = false;
  let retryDelay = 1000;
  let retryTimer = null;
  let failure = null; // {reason, seconds} of the last failed send, until a send goes through
  let shownCard = null; // the element on screen: a card put back (undo, conflict) is a new one, seen anew
  let shownAt = Infinity; // when the card on screen was first painted; input before then + MIN_SEEN_MS is ignored
  let pointerDown = null; // {card, at}: where the last press of the mouse began
  let lastActivity = Date.now();
  let isPaused = false;
  let waitingForCards = false;
  let decided = 0;
  const startedAt = Date.now();

  // --- outbox ---------------------------------------------------------------------------------------

  function tabIdentity() {
    let id = null;
    try {
      id = sessionStorage.getItem("twin-review-tab");
      if (!id) {
        id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
        sessionStorage.setItem("twin-review-tab", id);
      }
    } catch {
      id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    }
    return id;
  }

  function readEntries(key) {
    try {
      const entries = JSON.parse(localStorage.getItem(key) || "[]");
      return Array.isArray(entries) ? entries : [];
    } catch {
      return [];
    }
  }

  // This tab's entries under ``ownKey``, with those of the tabs of this queue that are gone (no sign of life
  // for TAB_ALIVE_MS) under ``prefix`` adopted, and the ones an older version of this page kept under the
  // prefix alone. ``same(a, b)``: two entries for one thing, kept once.
  function adoptEntries(prefix, ownKey, same) {
    const entries = readEntries(ownKey);
    try {
      for (let index = localStorage.length - 1; index >= 0; index -= 1) {
        const key = localStorage.key(index);
        if (!key || key === ownKey || !(key === prefix || key.startsWith(`${prefix}:`))) continue;
        const otherTab = key.slice(prefix.length + 1);
        const alive = Number(localStorage.getItem(aliveKey(otherTab)) || 0);
        if (otherTab && Date.now() - alive < TAB_ALIVE_MS) continue;
        for (const entry of readEntries(key)) {
          if (!entries.some((mine) => same(mine, entry))) entries.push(entry);
        }
        localStorage.removeItem(key);
      }
    } catch {
      // Storage disabled: this page's entries live in memory only.
    }
    return entries;
  }

  // The signs of life of tabs that are gone, once their entries have been adopted.
  function forgetGoneTabs() {
    try {
      const prefix = aliveKey("");
      for (let index = localStorage.length - 1; index >= 0; index -= 1) {
        const key = localStorage.key(index);
        if (!key || !key.startsWith(prefix) || key === aliveKey(tabId)) continue;
        if (Date.now() - Number(localStorage.getItem(key) || 0) >= TAB_ALIVE_MS) localStorage.removeItem(key);
      }
    } catch {
      // nothing to tidy
    }
  }

  function loadOutbox() {
    return adoptEntries(outboxPrefix, outboxKey, (a, b) => a.type === b.type && a.task === b.task);
  }

  function saveConflicts() {
    try {
      localStorage.setItem(conflictsKey, JSON.stringify(conflicts));
    } catch {
      // as for the outbox
    }
  }

  function saveOutbox() {
    try {
      localStorage.setItem(outboxKey, JSON.stringify(outbox));
    } catch {
      // Storage full or disabled: the outbox still lives in memory for this page.
    }
  }

  function signOfLife() {
    try {
      localStorage.setItem(aliveKey(tabId), String(Date.now()));
    } catch {
      // nothing to do: the other tabs will adopt this one's outbox only once it is really gone
    }
  }

  function pendingIds() {
    return outbox.map((entry) => String(entry.task));
  }

  function deckCards() {
    return [...deck.querySelectorAll(".review-card")];
  }

  function deckIds() {
    return deckCards().map((card) => card.dataset.task);
  }

  // Cards the page holds a lease for (a card in conflict was answered already: the server holds it for nobody).
  function leasedIds() {
    return deckCards()
      .filter((card) => !card.classList.contains("in-conflict"))
      .map((card) => card.dataset.task);
  }

  function have() {
    return [...new Set([...deckIds(), ...pendingIds()])].join(",");
  }

  async function post(url, fields, haveIds = have()) {
    const body = new URLSearchParams({ ...fields, have: haveIds });
    return fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
    });
  }

  // Sends the outbox in order. Business refusals (lease lost, task closed) are shown and dropped, a conflict
  // is shown on its card; network and server failures keep the entry and retry with backoff.
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
      failure = null;
      settle(entry, data);
      if (data && data.cards !== undefined) addCards(data.cards, data.held);
    }
    sending = false;
    showSaveStatus();
    afterDeckChange();
  }

  // What the server said of one sent entry.
  function settle(entry, data) {
    const ok = Boolean(data && data.ok);
    if (entry.type === "decide" && !ok) {
      countDecided(-1);
      if (data && data.code === "conflict" && data.conflict) {
        showConflict(entry, data.conflict, data.message);
        return;
      }
    }
    if (entry.type === "change" && ok) {
      countDecided(data.changed ? 1 : 0);
      notify(data.message, "info");
      return;
    }
    if (!ok) notify((data && data.message) || "That answer was not recorded.", "error");
  }

  function failLater(reason) {
    sending = false;
    failure = { reason, seconds: Math.round(retryDelay / 1000) };
    retryTimer = setTimeout(flush, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
    afterDeckChange();
  }

  // "All saved" only when every answer of this page is recorded: nothing waits in the outbox and no card
  // waits for a choice after a conflict.
  function showSaveStatus() {
    const conflicts = deck.querySelectorAll(".review-card.in-conflict").length;
    if (outbox.length && failure) {
      saveStatus.className = "save-status failed";
      saveStatus.textContent = `${outbox.length} not saved yet. ${failure.reason} Retrying in ${failure.seconds} s`;
    } else if (outbox.length) {
      saveStatus.className = "save-status saving";
      saveStatus.textContent = `Saving ${outbox.length}…`;
    } else if (conflicts) {
      saveStatus.className = "save-status failed";
      saveStatus.textContent = `${conflicts} answer${conflicts > 1 ? "s" : ""} in conflict: choose below`;
    } else {
      saveStatus.className = "save-status saved";
      saveStatus.textContent = "All saved";
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
    if (card && card !== shownCard) {
      shownCard = card;
      shownAt = Infinity;
      delete card.dataset.seen; // it may have been on screen before (an undo put another card over it)
      card.scrollIntoView({ block: "nearest" });
      // Two frames: the first callback runs before the paint that shows the card, the second after it.
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          if (currentCard() !== card) return;
          shownAt = performance.now();
          // Says when the card takes answers (the browser tests wait for it; a person never notices).
          setTimeout(() => {
            if (currentCard() === card) card.dataset.seen = "1";
          }, MIN_SEEN_MS);
        }),
      );
    }
    const busy = sending || outbox.length > 0 || waitingForCards;
    loading.hidden = Boolean(card) || !busy;
    empty.hidden = Boolean(card) || busy;
    if (!card) shownCard = null;
    showSaveStatus();
  }

  // Whether an input made at ``time`` (an event's timeStamp) was made looking at the card on screen.
  function seenLongEnough(time) {
    return time - shownAt >= MIN_SEEN_MS;
  }

  function takeCurrent(type, fields) {
    const card = currentCard();
    if (!card) return;
    card.remove();
    delete card.dataset.seen;
    outbox.push({
      type,
      task: card.dataset.task,
      url: config.urls[type],
      fields: { task: card.dataset.task, key: card.dataset.key, ...fields },
      html: card.outerHTML,
    });
    saveOutbox();
    afterDeckChange(); // counts this answer too while an earlier one is still being sent
    flush();
  }

  function decide(action) {
    const card = currentCard();
    if (!card || !card.querySelector(`[data-action="${action}"]`)) return;
    if (card.classList.contains("in-conflict")) {
      resolveConflict(card, action);
      return;
    }
    const duration = Math.round(performance.now() - shownAt);
    takeCurrent("decide", { action, duration_ms: duration });
    countDecided(1);
  }

  function countDecided(change) {
    decided = Math.max(0, decided + change);
    const minutes = (Date.now() - startedAt) / 60000;
    sessionCount.textContent = `${decided} done` + (minutes >= 1 ? ` · ${(decided / minutes).toFixed(1)}/min` : "");
  }

  function skip() {
    const card = currentCard();
    if (card && card.classList.contains("in-conflict")) {
      resolveConflict(card, null);
      return;
    }
    takeCurrent("skip", {});
  }

  // Undo: an answer still in the outbox is taken back here; one already saved is withdrawn on the server.
  async function undo() {
    const inFlight = sending ? outbox[0] : null;
    const last = outbox[outbox.length - 1];
    if (last && last !== inFlight) {
      outbox.pop();
      saveOutbox();
      if (last.type === "decide") countDecided(-1);
      restoreCard(last.html, last.type === "decide" ? last.fields.action : null);
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
    countDecided(-1);
    if (data.card) restoreCard(data.card, data.action);
    notify(data.message, "info");
  }

  // Puts a card back on top of the deck; ``previous``: the answer it had, marked on its button.
  function restoreCard(html, previous) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const card = template.content.querySelector(".review-card");
    if (!card) return;
    delete card.dataset.seen;
    deck.querySelector(`.review-card[data-task="${card.dataset.task}"]`)?.remove();
    for (const button of card.querySelectorAll(".action.previous")) button.classList.remove("previous");
    card.querySelector(".previous-answer")?.remove();
    const button = previous && card.querySelector(`.action[data-action="${previous}"]`);
    if (button) {
      button.classList.add("previous");
      const note = document.createElement("p");
      note.className = "previous-answer";
      note.textContent = `You had answered “${actionLabel(button)}”. Answer again.`;
      card.querySelector(".card-head").after(note);
    }
    deck.prepend(card);
    afterDeckChange();
  }

  // A button's label without its key cap.
  function actionLabel(button) {
    return [...button.childNodes]
      .filter((node) => node.nodeType === Node.TEXT_NODE)
      .map((node) => node.textContent)
      .join("")
      .trim();
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

  // --- conflicts -------------------------------------------------------------------------------------------

  // The answer of ``entry`` met another one recorded before it: the card comes back on top of the deck and
  // says what was recorded, by whom and when. The annotator keeps that answer or changes it to theirs (or to
  // a third: any answer key on the card); a recorded answer of someone else can only be acknowledged.
  function showConflict(entry, conflict, message) {
    if (!conflicts.some((waiting) => waiting.task === entry.task)) {
      conflicts.push({ task: entry.task, html: entry.html, conflict, message });
      saveConflicts();
    }
    const template = document.createElement("template");
    template.innerHTML = entry.html.trim();
    const card = template.content.querySelector(".review-card");
    if (!card) {
      notify(message, "error");
      return;
    }
    delete card.dataset.seen;
    deck.querySelector(`.review-card[data-task="${card.dataset.task}"]`)?.remove();
    card.classList.add("in-conflict");
    card.dataset.conflict = JSON.stringify(conflict);
    card.querySelector(".previous-answer")?.remove();
    for (const button of card.querySelectorAll(".action")) button.classList.remove("previous", "recorded", "yours");
    card.querySelector(`.action[data-action="${conflict.action}"]`)?.classList.add("recorded");
    card.querySelector(`.action[data-action="${conflict.given}"]`)?.classList.add("yours");

    const when = new Date(conflict.at);
    const at = Number.isNaN(when.getTime())
      ? conflict.at
      : when.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
    const banner = document.createElement("section");
    banner.className = "conflict-banner";
    banner.setAttribute("role", "alert");
    const title = document.createElement("h3");
    title.textContent = "This answer was not recorded: the task already has one";
    const text = document.createElement("p");
    const who = conflict.mine ? "by you (in another tab or an earlier page)" : `by ${conflict.by}`;
    text.textContent =
      `Recorded: “${conflict.label}”, ${who}, ${at}. You answered: “${conflict.given_label}”.` +
      (conflict.can_change
        ? " Press the key of the answer that should stand, or choose:"
        : " It is not yours to change.");
    const choices = document.createElement("div");
    choices.className = "conflict-choices";
    choices.append(conflictButton("keep", conflict.can_change ? `Keep “${conflict.label}”` : "OK, go on"));
    if (conflict.can_change) {
      choices.append(conflictButton("change", `Change to “${conflict.given_label}”`));
    }
    banner.append(title, text, choices);
    card.querySelector(".card-head").after(banner);
    deck.prepend(card);
    afterDeckChange();
  }

  function conflictButton(choice, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `action conflict-${choice}`;
    button.dataset.conflictChoice = choice;
    button.textContent = label;
    return button;
  }

  // ``action``: the answer that should stand (null or the recorded one: keep what was recorded).
  function resolveConflict(card, action) {
    const conflict = JSON.parse(card.dataset.conflict);
    const keep = action === null || action === conflict.action;
    if (!keep && !conflict.can_change) {
      notify(`Task #${card.dataset.task} was decided by ${conflict.by}; it is not yours to change.`, "info");
      return;
    }
    card.remove();
    conflicts = conflicts.filter((waiting) => waiting.task !== card.dataset.task);
    saveConflicts();
    if (keep) {
      notify(`Task #${card.dataset.task}: “${conflict.label}” stays recorded.`, "info");
      afterDeckChange();
      return;
    }
    card.classList.remove("in-conflict");
    card.querySelector(".conflict-banner")?.remove();
    outbox.push({
      type: "change",
      task: card.dataset.task,
      url: config.urls.change,
      fields: { task: card.dataset.task, decision: conflict.decision, action },
      html: card.outerHTML,
    });
    saveOutbox();
    afterDeckChange();
    flush();
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
      const response = await post(config.urls.heartbeat, {}, leasedIds().join(","));
      data = await response.json();
    } catch {
      return; // the next beat tries again; the lease has room for a few missed beats
    }
    for (const lost of data.lost || []) {
      if (pendingIds().includes(String(lost))) continue;
      const card = deck.querySelector(`.review-card[data-task="${lost}"]:not(.in-conflict)`);
      if (card) {
        card.remove();
        notify(`Task #${lost} went to someone else while you were away.`, "info");
      }
    }
    afterDeckChange();
    if (leasedIds().length < 2) refill();
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

  // The compare view (compare.js) owns its overlay and its keys; the deck only asks it to open.
  function openCompare(image) {
    const card = currentCard();
    if (!card) return;
    document.dispatchEvent(new CustomEvent("review:compare", { detail: { card, image: image || null } }));
  }

  function comparing() {
    return document.body.classList.contains("comparing");
  }

  function closeOverlays() {
    help.hidden = true;
  }

  // --- input ---------------------------------------------------------------------------------------------

  function run(name) {
    if (name === "help") {
      help.hidden = !help.hidden;
    } else if (name === "compare") {
      help.hidden = true;
      openCompare(null);
    } else if (name === "undo") {
      undo();
    } else if (name === "skip") {
      skip();
    } else {
      decide(name);
    }
  }

  // Commands that act on the card on screen must wait until it has been seen; help, undo and compare don't.
  function actsOnCard(name) {
    return name !== "help" && name !== "undo" && name !== "compare";
  }

  document.addEventListener("keydown", (event) => {
    lastActivity = Date.now();
    if (isPaused) {
      window.location.reload();
      return;
    }
    if (comparing()) return;
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
    if (actsOnCard(name) && !seenLongEnough(event.timeStamp)) {
      notify("That key came as the next card appeared: it was not applied to it.", "info");
      return;
    }
    if (name !== "help" && !help.hidden) help.hidden = true;
    run(name);
  });

  document.addEventListener(
    "pointerdown",
    (event) => {
      pointerDown = { card: event.target.closest(".review-card"), at: event.timeStamp };
    },
    true,
  );

  document.addEventListener("click", (event) => {
    lastActivity = Date.now();
    const choice = event.target.closest("[data-conflict-choice]");
    const button = choice || event.target.closest("[data-action], [data-command]");
    if (button) {
      const card = button.closest(".review-card");
      if (card && card !== currentCard()) return;
      if (card) {
        // The second click of a double click, or a press that began before this card was on screen (on the
        // card it replaced), is not an answer to it.
        const began = pointerDown && event.detail > 0 ? pointerDown : null;
        if (event.detail > 1 || (began && (began.card !== card || !seenLongEnough(began.at)))) {
          if (event.detail <= 2) notify("A second click as the next card appeared was not applied to it.", "info");
          return;
        }
      }
      if (choice) {
        const conflict = JSON.parse(card.dataset.conflict);
        resolveConflict(card, choice.dataset.conflictChoice === "change" ? conflict.given : null);
        return;
      }
      run(button.dataset.action || button.dataset.command);
      return;
    }
    const image = event.target.closest(".review-card img[data-image]");
    if (image && image.closest(".review-card") === currentCard()) {
      openCompare(image.dataset.image);
      return;
    }
    if (event.target.closest(".overlay") && !event.target.closest(".overlay-box")) closeOverlays();
  });

  // Any key counts as activity, those the compare view keeps for itself too (window's capture phase runs first).
  window.addEventListener("keydown", () => (lastActivity = Date.now()), true);
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
  saveOutbox();
  for (const waiting of [...conflicts]) showConflict(waiting, waiting.conflict, waiting.message);
  saveConflicts();
  signOfLife();
  setInterval(signOfLife, 5000);
  afterDeckChange();
  flush();
  setInterval(heartbeat, config.heartbeatSeconds * 1000);
})();
