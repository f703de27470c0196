/* tasktrail live status: no dependencies. Markup comes from {% tasktrail_status id %}.
 *
 * Each [data-tasktrail-status] element follows its task over Server-Sent Events; the
 * browser reconnects a dropped stream by itself and resumes from the last event id.
 * Where no stream can be had it polls the JSON status instead: under a WSGI server (503
 * without Retry-After) for good after a few tries; when the server refuses one more
 * stream (429: this viewer holds its share; 503 with Retry-After: the process is full)
 * until Retry-After has passed, then it tries the stream again. Values are set with textContent only: nothing a task reports
 * is ever parsed as HTML. Every update is also dispatched as a "tasktrail:update"
 * DOM event (detail: the status), for pages that react to it.
 *
 * A page may load it more than once (the dashboard's pages load it, and each widget's
 * markup links it too): a second load only scans for new widgets.
 */
(function () {
  "use strict";
  if (window.TaskTrail) {
    window.TaskTrail.scan();
    return;
  }

  const POLL_MS = 1000;
  const MAX_POLL_MS = 10000;
  // Streams refused this often without a Retry-After (a WSGI server answers 503 every
  // time) are given up; refusals with one (the stream limits) are retried after it.
  const MAX_REFUSALS = 3;
  const STATES = {
    PENDING: "Waiting in the queue",
    RECEIVED: "Received by a worker",
    STARTED: "Running",
    RETRY: "Waiting to retry",
    SUCCESS: "Succeeded",
    FAILURE: "Failed",
    REVOKED: "Revoked",
    LOST: "Lost: its worker stopped",
  };

  function describe(status) {
    const text = STATES[status.state] || (status.phase === "running" ? "Running" : status.state);
    const percent = status.progress && status.progress.percent;
    if (status.phase === "running" && percent !== null && percent !== undefined) {
      // English writes "30%", with no space (CSS and the admin do too).
      return `${text}: ${Math.floor(percent)}%`;
    }
    if (status.state === "RETRY") return `${text} (attempt ${status.attempt} failed)`;
    return text;
  }

  function outcome(status) {
    if (status.error) return `${status.error.type}: ${status.error.message}`;
    if ("result" in status) return `Result: ${JSON.stringify(status.result)}`;
    return "";
  }

  /**
   * Why a stream was refused, which EventSource does not tell: the same URL asked once
   * more with fetch (a refusal is answered at once). Seconds to wait before streaming
   * again (Retry-After, spread by up to a half so refused pages do not all come back at
   * once); 0 when it would be admitted now; null when retrying will not help.
   */
  async function retryAfter(url) {
    const controller = new AbortController();
    try {
      const response = await fetch(url, {
        headers: { Accept: "text/event-stream" },
        credentials: "same-origin",
        signal: controller.signal,
      });
      const header = Number(response.headers.get("Retry-After"));
      if (response.ok) return 0;
      if ((response.status === 429 || response.status === 503) && header > 0) {
        return header * (1 + Math.random() / 2);
      }
      return null;
    } catch (error) {
      return null;
    } finally {
      controller.abort(); // a stream admitted after all is not read: it closes
    }
  }

  class Widget {
    constructor(root) {
      this.root = root;
      this.done = false;
      this.pollMs = POLL_MS;
      this.streamAt = 0; // when a refused stream may be tried again (ms since 1970)
      this.refusals = window.EventSource && root.dataset.eventsUrl ? 0 : MAX_REFUSALS;
      if (openSocket(this)) return; // data-ws-url: the WebSocket transport below
      if (this.refusals < MAX_REFUSALS) this.stream();
      else this.poll();
    }

    set(selector, text) {
      const element = this.root.querySelector(selector);
      if (element && element.textContent !== text) element.textContent = text;
    }

    render(status) {
      const root = this.root;
      root.dataset.state = status.state;
      root.dataset.phase = status.phase;
      this.set(".tasktrail-state", describe(status));
      const bar = root.querySelector(".tasktrail-bar");
      const progress = status.progress;
      const done = status.phase === "done";
      if (bar) {
        // A bar only for a task that reports progress: an empty one reads as "stuck at
        // 0%". A finished task keeps its last value (how far a revoked one got); a
        // success is complete whatever it last reported.
        const percent = progress ? progress.percent : null;
        const known = percent !== null && percent !== undefined;
        // Without a total, how far a run got is told only while it runs (a sweep): once
        // it ended or waits to retry, no bar rather than one that says it still runs.
        const running = status.phase === "running";
        bar.hidden = !progress || (!known && !running && status.state !== "SUCCESS");
        if (status.state === "SUCCESS" && progress) bar.value = 100;
        else if (known) bar.value = percent;
        else if (running) bar.removeAttribute("value"); // no total: indeterminate
        bar.setAttribute("aria-valuetext", (!done && progress && progress.message) || describe(status));
      }
      // A progress message describes a run in progress ("57 s to go"): gone once it ends.
      this.set(".tasktrail-message", (!done && progress && progress.message) || "");
      this.set(".tasktrail-outcome", outcome(status));
      this.done = done;
      root.dispatchEvent(new CustomEvent("tasktrail:update", { detail: status, bubbles: true }));
    }

    connection(state) {
      this.root.dataset.connection = state;
    }

    stream() {
      const source = new EventSource(this.root.dataset.eventsUrl);
      source.onopen = () => this.connection("live");
      source.onmessage = (event) => {
        this.render(JSON.parse(event.data));
        if (this.done) {
          source.close();
          this.connection("closed");
        }
      };
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) {
          // Refused rather than dropped (a limit, not an ASGI server, an error status):
          // poll, and try the stream again when the server said to, or after a poll
          // succeeds, a few times.
          this.refused();
        } else {
          this.connection("reconnecting"); // the browser retries with Last-Event-ID
        }
      };
    }

    async refused() {
      const wait = await retryAfter(this.root.dataset.eventsUrl);
      if (wait === null) this.refusals += 1;
      else this.streamAt = Date.now() + wait * 1000;
      this.root.dataset.streamRefusals = String(Number(this.root.dataset.streamRefusals || 0) + 1);
      if (!this.done) this.poll();
    }

    async poll() {
      this.connection("polling");
      let response;
      try {
        response = await fetch(this.root.dataset.statusUrl, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
      } catch (error) {
        this.pollMs = Math.min(MAX_POLL_MS, this.pollMs * 2);
        setTimeout(() => this.poll(), this.pollMs);
        return;
      }
      if (response.status === 404) {
        this.set(".tasktrail-state", "Not found");
        this.connection("closed");
        return;
      }
      if (response.ok) {
        this.pollMs = POLL_MS;
        this.render(await response.json());
        if (!this.done && this.refusals < MAX_REFUSALS && Date.now() >= this.streamAt) {
          this.stream();
          return;
        }
      } else {
        this.pollMs = Math.min(MAX_POLL_MS, this.pollMs * 2);
      }
      if (this.done) this.connection("closed");
      else setTimeout(() => this.poll(), this.pollMs);
    }
  }

  /* ---- WebSocket transport (tasktrail.channels; the tags' websocket=True: data-ws-url). ----
   * For sites that run Django Channels. The socket carries what the event stream carries:
   * one snapshot per message, the socket closed with 1000 once the task is done. A dropped
   * socket is opened again with ?last_event_id= (the last snapshot's version), so only
   * what is new comes. A refusal closes it with 4000 + the HTTP status (4404: not found;
   * 4403: another site's page; 4429, 4503: too many live streams, a JSON reason with
   * retry_after): the widget then goes on as without a socket (event stream, else
   * polling), which keeps showing every change. Returns whether it opened a socket.
   */
  const SOCKET_RETRIES = 5;

  function socketAddress(widget) {
    const url = new URL(widget.root.dataset.wsUrl, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (widget.version !== undefined) url.searchParams.set("last_event_id", widget.version);
    return url.href;
  }

  function openSocket(widget, attempt = 0) {
    if (!widget.root.dataset.wsUrl || !window.WebSocket) return false;
    let socket;
    try {
      socket = new WebSocket(socketAddress(widget));
    } catch (error) {
      return false; // a malformed URL or a refused scheme: as without a socket
    }
    let opened = false;
    socket.onopen = () => {
      opened = true;
      widget.connection("live");
    };
    socket.onmessage = (event) => {
      const status = JSON.parse(event.data);
      widget.version = String(status.version);
      widget.render(status);
    };
    socket.onclose = (event) => {
      widget.root.dataset.socketClose = String(event.code);
      if (event.code === 1000 || widget.done) {
        widget.connection("closed");
      } else if (event.code === 4404) {
        widget.set(".tasktrail-state", "Not found");
        widget.connection("closed");
      } else if (event.code >= 4000 || !opened || attempt >= SOCKET_RETRIES) {
        // Refused, never opened (no socket routed there), or dropped too often.
        widget.poll();
      } else {
        // Dropped (a restart, a network change): again, from the last version seen.
        widget.connection("reconnecting");
        setTimeout(() => openSocket(widget, attempt + 1), POLL_MS * 2 ** attempt);
      }
    };
    return true;
  }
  /* ---- end of the WebSocket transport ---- */

  /* ---- Group bar: a group, chord or chain as one unit ({% tasktrail_group id %}). ----
   * Kept apart from the task widget above: its own markup ([data-tasktrail-group]),
   * the group's JSON (web/groups.py), the same stream-then-poll fallback. Every
   * update is dispatched as a "tasktrail:group" DOM event (detail: the status).
   */
  function describeGroup(status) {
    let text = "Running";
    if (status.ready) text = STATES[status.state] || status.state;
    else if (status.state === "PENDING") text = STATES.PENDING;
    return `${text}: ${status.progress}`;
  }

  function groupParts(status) {
    if (status.kind === "chain") {
      return status.steps.map((step) => ({
        id: step.id,
        state: step.sent ? step.state : "NOT_SENT",
        title: `${step.position + 1}. ${step.name || "task"}: ${step.sent ? step.state : "not sent yet"}`,
        current: status.current === step.position,
      }));
    }
    const parts = status.members.map((member) => ({
      id: member.id,
      state: member.state,
      title: `${member.name || "task"}: ${member.state}`,
      current: false,
    }));
    if (status.kind === "chord") {
      const callback = status.callback;
      parts.push({
        id: status.callback_id,
        state: callback ? callback.state : "NOT_SENT",
        title: `callback: ${callback ? callback.state : "waits for the header"}`,
        current: false,
        callback: true,
      });
    }
    return parts;
  }

  function groupOutcome(status) {
    const callback = status.callback;
    if (callback && callback.error) return `${callback.error.type}: ${callback.error.message}`;
    if ("result" in status) return `Result: ${JSON.stringify(status.result)}`;
    return "";
  }

  class GroupBar extends Widget {
    set(selector, text) {
      // The task widget's "Not found" (a 404 while polling) goes to the group's state.
      super.set(selector === ".tasktrail-state" ? ".tasktrail-group-state" : selector, text);
    }

    render(status) {
      const root = this.root;
      root.dataset.state = status.state;
      root.dataset.ready = String(status.ready);
      this.set(".tasktrail-group-state", describeGroup(status));
      this.set(".tasktrail-group-progress", status.progress);
      const bar = root.querySelector(".tasktrail-group-bar");
      if (bar) {
        bar.value = status.percent;
        bar.setAttribute("aria-valuetext", status.progress);
      }
      const list = root.querySelector(".tasktrail-group-parts");
      if (list) {
        const parts = groupParts(status);
        while (list.children.length > parts.length) list.lastElementChild.remove();
        parts.forEach((part, i) => {
          let item = list.children[i];
          if (!item) {
            item = document.createElement("li");
            list.appendChild(item);
          }
          item.dataset.id = part.id;
          item.dataset.state = part.state;
          if (part.callback) item.dataset.callback = "";
          if (part.current) item.setAttribute("aria-current", "step");
          else item.removeAttribute("aria-current");
          if (item.textContent !== part.title) item.textContent = part.title;
        });
      }
      this.set(".tasktrail-group-outcome", groupOutcome(status));
      this.done = status.ready;
      root.dispatchEvent(new CustomEvent("tasktrail:group", { detail: status, bubbles: true }));
    }
  }

  function scanGroups() {
    document.querySelectorAll("[data-tasktrail-group]").forEach((root) => {
      if (!root.tasktrail) root.tasktrail = new GroupBar(root);
    });
  }
  /* ---- end of the group bar ---- */

  function scan() {
    document.querySelectorAll("[data-tasktrail-status]").forEach((root) => {
      if (!root.tasktrail) root.tasktrail = new Widget(root);
    });
    scanGroups();
  }

  window.TaskTrail = { scan: scan, retryAfter: retryAfter };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
