/*
 * Agentbot webchat widget. Embed it with one tag:
 *
 *   <script src="https://agent.example.com/static/webchat/widget.js" data-integration="intg_…" async></script>
 *
 * Optional attributes: data-title (the panel's title), data-greeting (the first line the visitor
 * sees), data-color (the bubble's colour), data-open="true" (open the panel at once).
 *
 * Plain JavaScript, no dependencies and nothing global: it speaks the Socket.IO v5 protocol over
 * Engine.IO v4's websocket transport itself (the server accepts websocket connections only), and
 * draws its chat bubble inside a shadow root so the page's styles and the widget's do not mix.
 * The session id the server gives is kept in localStorage, so a reload resumes the conversation.
 */
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector('script[data-integration][src*="webchat/widget"]');
  if (!script) return;
  var integration = script.getAttribute("data-integration");
  if (!integration) {
    if (window.console) console.error("Agentbot webchat: add data-integration=\"intg_…\" to the widget's <script> tag");
    return;
  }
  var base = script.src.replace(/\/static\/webchat\/widget\.js(\?.*)?$/, "");
  var title = script.getAttribute("data-title") || "Chat with us";
  var greeting = script.getAttribute("data-greeting") || "Hi! Ask us anything.";
  var color = script.getAttribute("data-color") || "#2563eb";
  var storageKey = "agentbot-webchat:" + integration;

  function load() {
    try { return window.localStorage.getItem(storageKey); } catch (e) { return null; }
  }
  function save(value) {
    try { window.localStorage.setItem(storageKey, value); } catch (e) { /* private mode: the session lasts the page */ }
  }
  function parse(text) {
    try { return JSON.parse(text); } catch (e) { return null; }
  }

  // --- Socket.IO v5 over an Engine.IO v4 websocket --------------------------------------------
  // Engine.IO packets: 0 open, 1 close, 2 ping, 3 pong, 4 message. A message carries a Socket.IO
  // packet: 0 connect, 1 disconnect, 2 event, 3 ack, 4 connect error (default namespace only).
  function Connection(url, auth, on) {
    var ws = null, timer = null, watchdog = null, attempt = 0, stopped = false;
    var connected = false, ackId = 0, acks = {}, heartbeat = 45000;

    function open() {
      ws = new WebSocket(url);
      ws.onmessage = function (e) { if (typeof e.data === "string") receive(e.data); };
      ws.onclose = closed;
      ws.onerror = function () { /* onclose follows */ };
    }
    function closed() {
      clearTimeout(watchdog);
      var was = connected;
      connected = false;
      for (var id in acks) { if (acks.hasOwnProperty(id)) acks[id]({ ok: false, error: "disconnected", message: "the connection was lost; send it again" }); }
      acks = {};
      if (was) on("disconnect");
      if (!stopped) {
        var delay = Math.min(30000, 1000 * Math.pow(2, attempt++)) * (0.5 + Math.random() / 2);
        on("reconnecting", delay);
        timer = setTimeout(open, delay);
      }
    }
    function alive() {
      // The server pings every pingInterval; silence beyond interval + timeout is a dead link.
      clearTimeout(watchdog);
      watchdog = setTimeout(function () { if (ws) ws.close(); }, heartbeat);
    }
    function receive(data) {
      var type = data.charAt(0);
      if (type === "0") {
        var hello = parse(data.slice(1)) || {};
        if (hello.pingInterval) heartbeat = hello.pingInterval + (hello.pingTimeout || 20000);
        alive();
        ws.send("40" + JSON.stringify(auth()));
      } else if (type === "2") {
        alive();
        ws.send("3");
      } else if (type === "1") {
        ws.close();
      } else if (type === "4") {
        packet(data.slice(1));
      }
    }
    function packet(data) {
      var type = data.charAt(0), rest = data.slice(1);
      if (rest.charAt(0) === "/") return; // another namespace: not ours
      if (type === "0") {
        connected = true;
        attempt = 0;
        on("connect");
      } else if (type === "4") {
        var refusal = parse(rest) || {};
        var code = refusal.data && refusal.data.error;
        if (code !== "unavailable") stopped = true; // a refusal stands until the page changes
        on("connect_error", { error: code || "refused", message: refusal.message || "the chat refused the connection" });
        ws.close();
      } else if (type === "1") {
        ws.close();
      } else if (type === "2" || type === "3") {
        var found = /^(\d*)([\s\S]*)$/.exec(rest);
        var args = parse(found[2]);
        if (!args || !args.length) return;
        if (type === "2") {
          on("event", args[0], args[1]);
        } else if (acks[found[1]]) {
          var callback = acks[found[1]];
          delete acks[found[1]];
          callback(args[0]);
        }
      }
    }
    this.emit = function (name, data, callback) {
      if (!connected) return false;
      var id = "";
      if (callback) {
        id = String(++ackId);
        acks[id] = callback;
      }
      ws.send("42" + id + JSON.stringify([name, data]));
      return true;
    };
    this.connected = function () { return connected; };
    open();
  }

  // --- the chat bubble and its panel --------------------------------------------------------
  var STYLE =
    ":host{all:initial}" +
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
    ".bubble{position:fixed;right:20px;bottom:20px;width:58px;height:58px;border-radius:50%;border:0;cursor:pointer;" +
    "background:var(--c);color:#fff;box-shadow:0 4px 16px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;z-index:2147483000}" +
    ".bubble svg{width:28px;height:28px;fill:currentColor}" +
    ".bubble .unread{position:absolute;top:2px;right:2px;width:14px;height:14px;border-radius:50%;background:#e11d48;border:2px solid #fff}" +
    ".bubble .unread[hidden]{display:none}" +
    ".panel{position:fixed;right:20px;bottom:92px;width:360px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 120px);" +
    "background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;z-index:2147483000;color:#111}" +
    ".panel[hidden]{display:none}" +
    "header{background:var(--c);color:#fff;padding:12px 14px;display:flex;align-items:center;justify-content:space-between;font-size:15px;font-weight:600}" +
    "header button{background:none;border:0;color:#fff;font-size:22px;line-height:1;cursor:pointer}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f7f9}" +
    ".msg{max-width:80%;padding:8px 11px;border-radius:12px;font-size:14px;line-height:1.4;white-space:pre-wrap;word-wrap:break-word}" +
    ".msg.visitor{align-self:flex-end;background:var(--c);color:#fff;border-bottom-right-radius:4px}" +
    ".msg.agent{align-self:flex-start;background:#fff;border:1px solid #e3e5e8;border-bottom-left-radius:4px}" +
    ".msg.failed{opacity:.55}" +
    ".msg.notice{align-self:center;background:#fff7e0;border:1px solid #f2d48a;font-size:13px;max-width:92%;text-align:center}" +
    ".typing{align-self:flex-start;color:#666;font-size:13px;padding:0 4px}" +
    ".status{font-size:12px;padding:4px 12px;color:#555;min-height:0}" +
    ".status.error{color:#b42318}" +
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #e3e5e8}" +
    "textarea{flex:1;resize:none;border:1px solid #cfd3d8;border-radius:8px;padding:8px;font-size:14px;height:40px}" +
    "form button{background:var(--c);color:#fff;border:0;border-radius:8px;padding:0 14px;font-size:14px;cursor:pointer}" +
    "form button:disabled{opacity:.5;cursor:default}";
  var ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    for (var name in attributes) { if (attributes.hasOwnProperty(name)) node.setAttribute(name, attributes[name]); }
    if (text) node.textContent = text;
    return node;
  }

  function start() {
    var host = element("div", { id: "agentbot-webchat" });
    document.body.appendChild(host);
    var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var style = element("style");
    style.textContent = STYLE.replace(/var\(--c\)/g, color.replace(/[^#\w(),.% -]/g, ""));
    var bubble = element("button", { class: "bubble", type: "button", "aria-label": "Open chat", "aria-expanded": "false" });
    bubble.innerHTML = ICON;
    var unread = element("span", { class: "unread", hidden: "" });
    bubble.appendChild(unread);
    var panel = element("section", { class: "panel", role: "dialog", "aria-label": title, hidden: "" });
    var header = element("header");
    header.appendChild(element("span", { class: "title" }, title));
    var close = element("button", { type: "button", class: "close", "aria-label": "Close chat" }, "\u00d7");
    header.appendChild(close);
    var log = element("div", { class: "log", role: "log", "aria-live": "polite" });
    var typing = element("div", { class: "typing", hidden: "" }, "Typing\u2026");
    var status = element("div", { class: "status", role: "status" });
    var form = element("form");
    var input = element("textarea", { placeholder: "Type your question\u2026", "aria-label": "Your message", rows: "1" });
    var send = element("button", { type: "submit" }, "Send");
    form.appendChild(input);
    form.appendChild(send);
    panel.appendChild(header);
    panel.appendChild(log);
    panel.appendChild(status);
    panel.appendChild(form);
    root.appendChild(style);
    root.appendChild(panel);
    root.appendChild(bubble);

    var shown = {}, lastNotice = "", maxChars = 2000, statusTimer = null, connection = null;

    function scroll() { log.scrollTop = log.scrollHeight; }
    function add(kind, text, id) {
      if (id) {
        if (shown[id]) return shown[id];
        shown[id] = true;
      }
      var node = element("div", { class: "msg " + kind }, text);
      if (id) node.setAttribute("data-id", id);
      log.insertBefore(node, typing.parentNode === log ? typing : null);
      scroll();
      return node;
    }
    function notice(text) {
      if (text === lastNotice) return;
      lastNotice = text;
      add("notice", text);
    }
    function say(text, isError) {
      clearTimeout(statusTimer);
      status.textContent = text || "";
      status.className = "status" + (isError ? " error" : "");
      status.setAttribute("role", isError ? "alert" : "status");
      if (text && isError) statusTimer = setTimeout(function () { say(""); }, 8000);
    }
    function setOpen(open) {
      if (open) panel.removeAttribute("hidden"); else panel.setAttribute("hidden", "");
      bubble.setAttribute("aria-expanded", open ? "true" : "false");
      bubble.setAttribute("aria-label", open ? "Close chat" : "Open chat");
      if (open) {
        unread.setAttribute("hidden", "");
        if (!connection) connect();
        input.focus();
        scroll();
      }
    }
    function showHistory(messages) {
      log.textContent = "";
      shown = {};
      lastNotice = "";
      log.appendChild(typing);
      for (var i = 0; i < messages.length; i++) {
        var m = messages[i];
        add(m.sender_type === "visitor" ? "visitor" : "agent", m.text, m.id);
      }
    }

    function handle(name, data) {
      data = data || {};
      if (name === "session") {
        save(data.session);
        if (data.limits && data.limits.max_message_chars) maxChars = data.limits.max_message_chars;
        if (data.messages && data.messages.length) showHistory(data.messages);
        else if (!log.querySelector(".msg")) notice(greeting);
      } else if (name === "message") {
        add(data.sender_type === "visitor" ? "visitor" : "agent", data.text, data.id);
        // An answer or a person's reply while the panel is closed: a dot on the bubble.
        if (panel.hasAttribute("hidden")) unread.removeAttribute("hidden");
      } else if (name === "typing") {
        if (data.typing) typing.removeAttribute("hidden"); else typing.setAttribute("hidden", "");
        scroll();
      } else if (name === "handoff" || name === "notice") {
        notice(data.message);
      } else if (name === "error") {
        say(data.message, true);
      }
    }

    function connect() {
      var url = base.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
      connection = new Connection(
        url,
        function () {
          var auth = { integration: integration, page_url: String(window.location.href).slice(0, 2048) };
          var session = load();
          if (session) auth.session = session;
          return auth;
        },
        function (what, a, b) {
          if (what === "connect") { say(""); send.disabled = false; }
          else if (what === "disconnect") { send.disabled = true; typing.setAttribute("hidden", ""); }
          else if (what === "reconnecting") say("Connecting\u2026");
          else if (what === "connect_error") { send.disabled = true; say(a.message, false); status.className = "status error"; }
          else if (what === "event") handle(a, b);
        }
      );
      send.disabled = true;
    }

    function submit() {
      var text = input.value.replace(/^\s+|\s+$/g, "");
      if (!text) return;
      if (text.length > maxChars) {
        say("The message has " + text.length + " characters; shorten it to at most " + maxChars + ".", true);
        return;
      }
      var node = add("visitor", text);
      var sent = connection && connection.emit("message", { text: text }, function (ack) {
        if (!ack || !ack.ok) {
          node.className += " failed";
          say((ack && ack.message) || "The message was not sent.", true);
        }
      });
      if (!sent) {
        node.className += " failed";
        say("Not connected yet: the message was not sent. Try again in a moment.", true);
        return;
      }
      input.value = "";
    }

    bubble.addEventListener("click", function () { setOpen(panel.hasAttribute("hidden")); });
    close.addEventListener("click", function () { setOpen(false); });
    form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
    });
    log.appendChild(typing);
    // A visitor who talked before sees the conversation again without a click.
    if (script.getAttribute("data-open") === "true" || load()) connect();
    if (script.getAttribute("data-open") === "true") setOpen(true);
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
