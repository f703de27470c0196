/* tasktrail live status: no dependencies. Markup comes from {% tasktrail_status id %}.
 *
 * Each [data-tasktrail-status] element follows its task over Server-Sent Events; the
 * browser reconnects a dropped stream by itself and resumes from the last event id.
 * Where no stream can be had (a WSGI server, a proxy that refuses it), it polls the
 * JSON status instead. Values are set with textContent only: nothing a task reports
 * is ever parsed as HTML. Every update is also dispatched as a "tasktrail:update"
 * DOM event (detail: the status), for pages that react to it.
 */
(function () {
  "use strict";
  if (window.TaskTrail) {
    window.TaskTrail.scan();
    return;
  }

  const POLL_MS = 1000;
  const MAX_POLL_MS = 10000;
  // Streams refused this often (a WSGI server answers 503 every time) are given up.
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

  class Widget {
    constructor(root) {
      this.root = root;
      this.done = false;
      this.pollMs = POLL_MS;
      this.refusals = window.EventSource && root.dataset.eventsUrl ? 0 : MAX_REFUSALS;
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
          // Refused rather than dropped (not an ASGI server, an error status): poll,
          // and try the stream again after a poll succeeds, a few times.
          this.refusals += 1;
          if (!this.done) this.poll();
        } else {
          this.connection("reconnecting"); // the browser retries with Last-Event-ID
        }
      };
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
        if (!this.done && this.refusals < MAX_REFUSALS) {
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

  function scan() {
    document.querySelectorAll("[data-tasktrail-status]").forEach((root) => {
      if (!root.tasktrail) root.tasktrail = new Widget(root);
    });
  }

  window.TaskTrail = { scan: scan };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
