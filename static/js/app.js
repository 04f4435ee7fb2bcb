// chat-realtime in the browser: the small part htmx does not do by itself.
// Pages and fragments come from the server; the socket's frames are HTML that
// htmx's ws extension swaps in. This file sends frames (join, typing, messages,
// read), keeps "sending..." bubbles until their ack, catches up after a
// reconnect, and handles a few page niceties (theme preview, image previews).
(function () {
  "use strict";

  let socket = null;        // the ws extension's socket wrapper, once open
  let openedBefore = false;
  let joinedChat = null;
  let lastTypingSent = 0;
  let lastReadSent = null;
  const pending = new Map(); // client_id -> {text, chatId}

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // Reconnect soon after a drop: back off, but never wait more than 5 seconds.
  htmx.config.wsReconnectDelay = (retryCount) => Math.min(500 * 2 ** retryCount, 5000) * (0.5 + Math.random() / 2);

  // 4xx answers carry the message to show (a refused action, a report sent twice): swap them in too.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true },
    { code: "...", swap: false, error: true },
  ];

  // An element waiting for the answer to its own request (or its link to one).
  const inFlight = (element) => element.matches(".htmx-request") || !!element.querySelector(":scope > .htmx-request");

  // A chat's row to the top of its list, the one row of its chat there; moved as it is where the browser
  // can (`moveBefore`), so that a link of it the person just clicked keeps the focus.
  function upAlone(row) {
    $$(`.chat-row[data-chat-id="${row.dataset.chatId}"]`).forEach((copy) => { if (copy !== row) copy.remove(); });
    const list = row.parentElement;
    if (list.firstElementChild === row) return;
    if (list.moveBefore) list.moveBefore(row, list.firstElementChild);
    else list.prepend(row);
  }

  // The socket sends every page the same fragments; a page without, say, the chat
  // header has no target for its status. Drop such fragments before htmx looks
  // for their targets, instead of logging an error for each; and leave alone an
  // element that is waiting for the answer to its own request.
  htmx.defineExtension("present-targets-only", {
    transformResponse: function (text, xhr) {
      if (xhr) return text; // an ordinary htmx request: its response is what was asked for
      const holder = document.createElement("template");
      holder.innerHTML = text;
      const kept = new Map(); // chat id -> its row, whose delete was held back: its own request is in flight
      Array.from(holder.content.children).forEach((fragment) => {
        const spec = fragment.getAttribute("hx-swap-oob") || "true";
        const colon = spec.indexOf(":");
        const selector = colon >= 0 ? spec.slice(colon + 1) : "#" + fragment.id;
        if (!fragment.id && colon < 0) return;
        if (refreshing.has(selector)) refreshing.set(selector, refreshing.get(selector) + 1); // news: newer
        let targets = [];
        try { targets = Array.from(document.querySelectorAll(selector)); } catch (error) { targets = []; }
        // A target whose own request is in flight gets its answer from that request; replacing or
        // deleting it now would leave the answer without a place to land. Adding to it (a new message
        // while older ones load) leaves it in place.
        const style = colon >= 0 ? spec.slice(0, colon) : "outerHTML";
        const replaces = ["outerHTML", "innerHTML", "delete"].includes(style);
        if (!targets.length || (replaces && targets.some(inFlight))) {
          // A row that moves to the top is deleted and drawn anew at the top (the next fragment).
          const row = spec.startsWith("delete:") && targets.find(inFlight);
          if (row && row.matches(".chat-row")) kept.set(row.dataset.chatId, row);
          // The answer on its way may be older than this news: once it has landed, it is asked for afresh.
          targets.filter((target) => inFlight(target) && target.dataset.refresh)
            .forEach((target) => refreshAfterAnswer.set(selector, target.dataset.refresh));
          fragment.remove();
          return;
        }
        // A row that was kept takes the new row's text and goes up itself, rather than stay beside a copy.
        $$(".chat-row", fragment).forEach((row) => {
          const old = kept.get(row.dataset.chatId);
          const oldBody = old && old.parentElement && $(".row-body", old);
          const body = $(".row-body", row);
          if (!oldBody || !body) return;
          oldBody.replaceWith(body);
          upAlone(old);
          row.remove();
        });
        // A row's text comes alone when the server knows the row at the top of the list already; a list
        // fetched meanwhile (a catch-up) may have put another above it, or left a copy: the row goes up, alone.
        if (fragment.id.startsWith("chat-row-body-")) {
          const row = targets[0].closest(".chat-row");
          if (row && row.parentElement) upAlone(row);
        }
        // Stored messages go before the bubbles this page has not got stored yet: those will be stored after.
        if (spec.startsWith("beforeend:#messages-") && targets.length) {
          const unsent = $(".bubble.pending, .bubble.failed", targets[0]);
          if (unsent) fragment.setAttribute("hx-swap-oob", "beforebegin:#" + unsent.id);
          // A join's answer that could not bring every message missed: the rest, once this is in place.
          const more = $("template.more-after", fragment);
          if (more) {
            more.remove();
            setTimeout(() => fetchTheRest(Number(targets[0].id.replace("messages-", "")), more.dataset.after));
          }
        }
        // A message already on the page (caught up, or sent over HTTP) is not added twice; a fragment
        // that replaces it where it is (a moderator removed it) goes through.
        if (selector === "#" + fragment.id) return;
        $$("article[id^='msg-']", fragment).concat(fragment.matches("article[id^='msg-']") ? [fragment] : [])
          .forEach((bubble) => {
            if (!document.getElementById(bubble.id)) return;
            const pendingTarget = spec.startsWith("outerHTML:#pending-") ? document.querySelector(selector) : null;
            if (pendingTarget) pendingTarget.remove();
            if (bubble === fragment) fragment.remove(); else bubble.remove();
          });
      });
      return holder.innerHTML;
    },
  });


  function send(frame) {
    if (!socket) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function currentPane() {
    const pane = $("#chat-pane[data-chat-id]");
    return pane ? { pane, chatId: Number(pane.dataset.chatId) } : null;
  }

  function messagesOf(chatId) { return $("#messages-" + chatId); }

  // The newest stored message a chat's pane shows (bubbles still being sent come after it).
  function newestShown(chatId) {
    const stored = $$(".bubble[data-message-id]", messagesOf(chatId) || document.createElement("div"));
    return stored[stored.length - 1] || null;
  }

  function nearBottom(history) { return history.scrollHeight - history.scrollTop - history.clientHeight < 120; }

  function scrollToBottom(chatId) {
    const history = $("#history-" + chatId);
    if (history) history.scrollTop = history.scrollHeight;
  }

  // --- Times in the reader's own time zone --------------------------------------------
  function localTimes(root) {
    $$(".bubble time[datetime], .row-time[datetime]", root).forEach((el) => {
      const when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) el.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    });
  }

  // --- Joining the chat on screen ------------------------------------------------------
  function joinCurrentChat() {
    const current = currentPane();
    if (joinedChat && (!current || current.chatId !== joinedChat)) {
      send({ type: "leave_chat", chat_id: joinedChat });
      joinedChat = null;
    }
    // With the newest message the page shows: the answer brings any that came after it (sent while the
    // pane was loading, say), which no event will.
    const shown = current && newestShown(current.chatId);
    const join = current && { type: "join_chat", chat_id: current.chatId, after: shown ? shown.dataset.messageId : "" };
    if (current && joinedChat !== current.chatId && send(join)) {
      joinedChat = current.chatId;
      lastReadSent = null;
    }
    $$(".chat-row").forEach((row) => row.classList.toggle("active", !!current && Number(row.dataset.chatId) === current.chatId));
  }

  function markLatestRead() {
    const current = currentPane();
    if (!current || document.visibilityState !== "visible") return;
    const theirs = $$(".bubble.theirs[data-message-id]", messagesOf(current.chatId) || document);
    const last = theirs[theirs.length - 1];
    if (last && last.dataset.messageId !== lastReadSent) {
      if (send({ type: "mark_read", chat_id: current.chatId, message_id: last.dataset.messageId })) {
        lastReadSent = last.dataset.messageId;
      }
    }
  }

  // --- Catching up: what no event brought -----------------------------------------------
  // A join's answer brings the messages after the newest one the page showed, up to a page; past that it
  // says where the rest begins, and the rest is fetched here, page by page, each message put right after
  // the one before it: before anything that arrives meanwhile, and before bubbles still being sent.
  async function fetchTheRest(chatId, after) {
    const list = messagesOf(chatId);
    let previousId = "msg-" + after;
    for (let guard = 0; guard < 50 && after && list; guard++) {
      let response = null;
      for (let attempt = 0; attempt < 5 && !(response && response.ok); attempt++) {
        // A store or database briefly away answers 503: wait and ask again rather than leave a gap.
        if (attempt) await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt));
        try {
          response = await fetch(`/chats/${chatId}/messages/?after=${encodeURIComponent(after)}`, {
            headers: { "HX-Request": "true" }, credentials: "same-origin",
          });
        } catch (error) { response = null; }
        if (response && response.status < 500 && !response.ok) break; // refused for good (the chat is gone)
      }
      if (!response || !response.ok) break;
      const holder = document.createElement("div");
      holder.innerHTML = await response.text();
      $$(".bubble[data-message-id]", holder).forEach((bubble) => {
        if (!document.getElementById(bubble.id)) {
          const previous = document.getElementById(previousId);
          if (previous && previous.parentElement === list) previous.after(bubble);
          else list.insertBefore(bubble, $(".bubble.pending, .bubble.failed", list)); // (null: at the end)
        }
        previousId = bubble.id;
      });
      localTimes(list);
      const more = $("template.more-after", holder);
      after = more ? more.dataset.after : null;
    }
  }

  // After a reconnect: the sidebar anew (the chat on screen catches up with its join).
  function catchUp() {
    if ($("#chat-list")) {
      htmx.ajax("GET", window.location.pathname, { target: "#chat-list", select: "#chat-list", swap: "outerHTML" });
    }
  }

  document.addEventListener("htmx:wsOpen", (event) => {
    socket = event.detail.socketWrapper;
    joinedChat = null;
    joinCurrentChat();
    if (openedBefore) catchUp();
    openedBefore = true;
    pending.forEach((entry, clientId) => {
      // Unacknowledged when the socket dropped: send again; the client_id makes it safe.
      entry.failed = false;
      if (entry.file) sendOverHttp(entry, clientId);
      else send({ type: "send_message", chat_id: entry.chatId, text: entry.text, client_id: clientId });
    });
  });
  document.addEventListener("htmx:wsClose", (event) => {
    socket = null;
    // 4401: what the socket opened with ended (a logout, another login in this browser, a new session key,
    // a ban), and htmx does not reconnect after it. The page loads again with what its cookie holds now:
    // the same person's page with a live socket, or the login page. Once a minute at most.
    if (event.detail.event && event.detail.event.code === 4401) {
      const last = Number(sessionStorage.getItem("reloadedFor4401") || 0);
      if (Date.now() - last > 60000) {
        sessionStorage.setItem("reloadedFor4401", String(Date.now()));
        window.location.reload();
      }
    }
  });

  document.addEventListener("htmx:wsBeforeMessage", () => {
    const current = currentPane();
    const history = current && $("#history-" + current.chatId);
    document.body.dataset.stickToBottom = history && nearBottom(history) ? "1" : "";
  });

  document.addEventListener("htmx:wsAfterMessage", () => {
    const current = currentPane();
    if (current && document.body.dataset.stickToBottom) scrollToBottom(current.chatId);
    localTimes(document);
    markLatestRead();
    joinCurrentChat(); // keeps the active row marked after a row is redrawn
  });

  // --- Fragments swapped in --------------------------------------------------------------
  // Looked at once the socket's fragments have settled: until then a fragment that replaced an
  // element wears that element's classes (htmx's settling).
  function finishSwapped() {
    $$(".typing.active").forEach((typing) => {
      // Each typing frame draws the line anew: it fades 3 s after the last one.
      if (!typing._clear) typing._clear = setTimeout(() => { typing.textContent = ""; typing.classList.remove("active"); }, 3000);
    });
    $$(".read-state[data-read-up-to]").forEach((state) => {
      // "Seen" says the other read the conversation's newest message: not once a newer one is there.
      const newest = newestShown(state.id.replace("read-state-", ""));
      state.hidden = !newest || newest.dataset.messageId !== state.dataset.readUpTo;
    });
    $$(".bubble.failed[data-client-id]").forEach((bubble) => {
      // A refusal comes without the text, which only this page has.
      const entry = pending.get(bubble.dataset.clientId);
      const text = $(".text", bubble);
      if (entry && text && !text.textContent) text.textContent = entry.text;
    });
  }

  function forgetAcknowledged() {
    pending.forEach((entry, clientId) => {
      if (document.querySelector(`.bubble[data-client-id="${clientId}"]:not(.pending):not(.failed)`)) {
        pending.delete(clientId);
      }
    });
  }

  document.addEventListener("htmx:wsAfterMessage", () => {
    finishSwapped();
    forgetAcknowledged();
    $$(".toasts .toast").forEach((toast) => { if (!toast._timer) toast._timer = setTimeout(() => toast.remove(), 6000); });
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && (event.detail.target.id === "chat-pane" || event.detail.elt.id === "chat-pane")) {
      setUpPane();
    }
    localTimes(event.detail.target || document);
  });
  document.addEventListener("htmx:afterSettle", () => { if (currentPane() && joinedChat !== currentPane().chatId) setUpPane(); });

  // Elements whose news came while their own request was on its way (selector -> the URL of what they show
  // now): drawn again from that URL once none of them waits for an answer. An answer to that is drawn only
  // if nothing newer came meanwhile (`refreshing`: selector -> a count that news and each new ask move on).
  const refreshAfterAnswer = new Map();
  const refreshing = new Map();
  function refreshAnswered() {
    refreshAfterAnswer.forEach((url, selector) => {
      if ($$(selector).some(inFlight)) return;
      refreshAfterAnswer.delete(selector);
      const asked = (refreshing.get(selector) || 0) + 1;
      refreshing.set(selector, asked);
      fetch(url, { headers: { "HX-Request": "true" } })
        .then((response) => (response.ok && !response.redirected && !response.headers.get("HX-Redirect")
          ? response.text() : ""))
        .then((html) => {
          if (refreshing.get(selector) !== asked) return; // news, or a newer ask, came meanwhile
          refreshing.delete(selector);
          const holder = document.createElement("template");
          holder.innerHTML = html.trim();
          const fresh = holder.content.firstElementChild;
          if (!fresh) return;
          $$(selector).forEach((target) => {
            if (inFlight(target)) return;
            const copy = fresh.cloneNode(true);
            target.replaceWith(copy);
            htmx.process(copy);
          });
        })
        .catch(() => { if (refreshing.get(selector) === asked) refreshing.delete(selector); });
    });
  }
  // After every request, whatever became of it (swapped, failed, aborted, timed out, nothing to swap), once
  // htmx has taken its marks off the element; and after every settle, for an answer swapped in later.
  document.addEventListener("htmx:afterRequest", () => setTimeout(refreshAnswered));
  document.addEventListener("htmx:afterSettle", refreshAnswered);

  // --- Writing ---------------------------------------------------------------------------
  function showPending(chatId, clientId, text) {
    const template = $("#pending-template");
    const list = messagesOf(chatId);
    if (!template || !list) return;
    const bubble = template.content.firstElementChild.cloneNode(true);
    bubble.id = "pending-" + clientId;
    bubble.dataset.clientId = clientId;
    $(".text", bubble).textContent = text; // text, never HTML
    list.appendChild(bubble);
    scrollToBottom(chatId);
  }

  function failPending(clientId, message) {
    const bubble = document.getElementById("pending-" + clientId);
    if (!bubble) return;
    bubble.classList.remove("pending");
    bubble.classList.add("failed");
    $(".status", bubble).textContent = "Not sent: " + message;
    if (!$(".retry", bubble)) {
      const retry = document.createElement("button");
      retry.type = "button"; retry.className = "retry"; retry.textContent = "Retry";
      bubble.appendChild(retry);
    }
    const entry = pending.get(clientId);
    if (entry) entry.failed = true;
  }

  // Over HTTP: images, and anything when the socket is away. Only a stored bubble counts as sent.
  async function sendOverHttp(entry, clientId) {
    const data = new FormData();
    data.set("client_id", clientId);
    data.set("text", entry.text);
    if (entry.file) data.set("image", entry.file);
    let response;
    try {
      response = await fetch(`/chats/${entry.chatId}/send`, {
        method: "POST", body: data, credentials: "same-origin", redirect: "manual",
        headers: { "HX-Request": "true", "X-CSRFToken": csrfToken() },
      });
    } catch (error) {
      failPending(clientId, "you are offline");
      return;
    }
    if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
      failPending(clientId, "your session has ended: reload the page to log in again");
      return;
    }
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();
    const stored = holder.querySelector("article.bubble[id^='msg-']");
    if (response.status !== 201 || !stored) {
      const reason = holder.querySelector(".status");
      failPending(clientId, reason ? reason.textContent.replace(/^\s*Not sent:\s*/, "").trim() : "try again");
      return;
    }
    const bubble = document.getElementById("pending-" + clientId);
    if (document.getElementById(stored.id)) { if (bubble) bubble.remove(); }
    else if (bubble) bubble.replaceWith(stored);
    else if (messagesOf(entry.chatId)) messagesOf(entry.chatId).appendChild(stored);
    pending.delete(clientId);
    localTimes(messagesOf(entry.chatId) || document);
  }

  function csrfToken() {
    const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    return headers["X-CSRFToken"] || "";
  }

  function submitComposer(form) {
    const chatId = Number(form.dataset.chatId);
    const textarea = $("textarea", form);
    const input = $("input[type=file]", form);
    const text = textarea.value.trim();
    const file = input && input.files.length ? input.files[0] : null;
    if (!text && !file) return;
    const clientId = newClientId();
    const entry = { text, chatId, file };
    pending.set(clientId, entry);
    showPending(chatId, clientId, file ? (text || "image") : text);
    if (file || !socket) sendOverHttp(entry, clientId);
    else send({ type: "send_message", chat_id: chatId, text, client_id: clientId });
    textarea.value = "";
    clearAttachment(form);
    textarea.focus();
  }

  function clearAttachment(form) {
    const file = $("input[type=file]", form);
    const preview = $(".attachment-preview", form);
    if (file) file.value = "";
    if (preview) { preview.hidden = true; $("img", preview).removeAttribute("src"); }
  }

  function setUpPane() {
    const current = currentPane();
    joinCurrentChat();
    if (!current) return;
    scrollToBottom(current.chatId);
    localTimes(current.pane);
    const form = $("#composer", current.pane);
    if (!form || form._ready) return;
    form._ready = true;
    form.addEventListener("submit", (event) => { event.preventDefault(); submitComposer(form); });
    const textarea = $("textarea", form);
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); submitComposer(form); }
    });
    textarea.addEventListener("input", () => {
      const now = Date.now();
      if (now - lastTypingSent > 2000 && textarea.value.trim()) {
        if (send({ type: "typing", chat_id: current.chatId })) lastTypingSent = now;
      }
    });
    const file = $("input[type=file]", form);
    file.addEventListener("change", () => {
      const preview = $(".attachment-preview", form);
      if (file.files.length) {
        const image = $("img", preview);
        if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
        image.src = URL.createObjectURL(file.files[0]);
        preview.hidden = false;
      }
    });
    $(".remove-attachment", form).addEventListener("click", () => clearAttachment(form));
  }

  document.addEventListener("click", (event) => {
    const retry = event.target.closest(".bubble.failed .retry");
    if (retry) {
      const bubble = retry.closest(".bubble");
      const clientId = bubble.dataset.clientId || bubble.id.replace(/^pending-/, "");
      const entry = pending.get(clientId);
      if (!entry) return;
      entry.failed = false;
      bubble.classList.remove("failed"); bubble.classList.add("pending");
      bubble.id = "pending-" + clientId;
      $(".status", bubble).textContent = "sending…";
      retry.remove();
      if (entry.file || !socket) sendOverHttp(entry, clientId);
      else send({ type: "send_message", chat_id: entry.chatId, text: entry.text, client_id: clientId });
      return;
    }
    // The bell opens its menu; anywhere else closes it.
    const bell = event.target.closest(".bell-button");
    const menu = $("#bell-menu");
    if (bell && menu) {
      event.preventDefault();
      menu.hidden = !menu.hidden;
      bell.setAttribute("aria-expanded", String(!menu.hidden));
    } else if (menu && !menu.hidden && !event.target.closest("#bell-menu")) {
      closeBell();
    }
  });

  function closeBell() {
    const menu = $("#bell-menu");
    const bell = $(".bell-button");
    if (!menu || menu.hidden) return;
    menu.hidden = true;
    if (bell) { bell.setAttribute("aria-expanded", "false"); bell.focus(); }
  }

  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeBell(); });
  document.addEventListener("visibilitychange", markLatestRead);

  // --- Settings and profile ----------------------------------------------------------------
  document.addEventListener("change", (event) => {
    if (event.target.matches(".theme-choice input[type=radio]")) {
      document.documentElement.dataset.theme = event.target.value; // live preview
    }
    if (event.target.matches("input[type=file][name=avatar]")) {
      const preview = $("#avatar-preview");
      if (preview && event.target.files.length) {
        preview.src = URL.createObjectURL(event.target.files[0]);
        preview.hidden = false;
      }
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    setUpPane();
  });
})();
