/* tasktrail dashboard: no dependencies, no build step.
 *
 * 1. Actions ask before they act: a form with data-confirm submits only after
 *    confirm(), and then says so (confirmed=yes). Without JavaScript the server asks
 *    instead, on a confirmation page.
 * 2. Rows of tasks that are not done follow their tasks: one request for all of a
 *    table's rows every POLL_MS (the live endpoint reads them by primary key), paused
 *    while the tab is hidden, stopped when every row is done.
 * 3. A task's page reloads once when its task ends, to show its result and timeline.
 * 4. Live lists (table[data-stream-url]): one EventSource per page brings the tasks new
 *    to the list (the page's search applied by the server), added at the top, the
 *    oldest rows dropped past data-live-cap; "Running now" (data-live-list=running)
 *    drops the rows that are done. A Pause button closes the stream; Resume reopens it
 *    from the last event. The overview's counters follow the same stream. Where the
 *    server cannot stream (WSGI: 503 without Retry-After), the page asks for the same
 *    batch (once=1) every POLL_MS instead; when it refuses one more stream (429, or 503
 *    with Retry-After: the stream limits), the page polls until Retry-After has passed,
 *    then streams again.
 * Values are written with textContent only: nothing a task reports is parsed as HTML.
 */
(function () {
  "use strict";
  const POLL_MS = 2000;
  const MAX_POLL_MS = 30000;

  function confirmActions() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) {
          event.preventDefault();
          return;
        }
        if (!form.querySelector("input[name=confirmed]")) {
          const input = document.createElement("input");
          input.type = "hidden";
          input.name = "confirmed";
          input.value = "yes";
          form.appendChild(input);
        }
      });
    });
  }

  function setText(row, field, text) {
    const element = row.querySelector(`[data-field="${field}"]`);
    if (element && element.textContent !== text) element.textContent = text;
    return element;
  }

  function render(row, task) {
    row.dataset.state = task.state;
    row.dataset.phase = task.phase;
    const badge = setText(row, "state", task.state);
    if (badge) badge.dataset.state = task.state; // the CSS colours the badge by it
    setText(row, "progress", task.progress);
    setText(row, "worker", task.worker);
    const updated = setText(row, "updated", task.updated_at.replace("T", " ").slice(0, 19));
    if (updated) updated.setAttribute("datetime", task.updated_at);
    const bar = row.querySelector('[data-field="bar"]');
    if (!bar) return;
    if (task.percent !== null) bar.value = task.percent;
    else if (task.phase === "running") bar.removeAttribute("value"); // indeterminate
    else if (task.phase === "done") bar.value = task.state === "SUCCESS" ? 100 : 0;
    const table = row.closest("table");
    if (table && table.dataset.liveList === "running" && task.phase === "done") row.remove();
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function moment(iso) {
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }

  function cell(label, ...children) {
    const td = element("td", { "data-label": label });
    children.forEach((child) => td.append(child));
    return td;
  }

  /** A row as _tasks.html draws it, from the stream's JSON. */
  function buildRow(task, seesWorker) {
    const row = element("tr", { "data-task-id": task.id });
    const link = element("a", { href: task.url }, task.name || "(unnamed)");
    const id = element("code", { class: "tt-id" }, task.id);
    const badge = element("span", { class: "tt-state", "data-field": "state" }, task.state);
    const state = cell("State", badge);
    if (task.attempt > 1) state.append(" ", element("small", {}, `attempt ${task.attempt}`));
    const bar = element("progress", { max: "100", "data-field": "bar", "aria-label": `progress of ${task.id}` });
    const sent = task.sent_at ? element("time", { datetime: task.sent_at }, moment(task.sent_at)) : "";
    const updated = element("time", { "data-field": "updated" });
    row.append(
      cell("Task", link, element("br"), id),
      state,
      cell("Progress", bar, element("small", { "data-field": "progress" })),
      cell("Queue", task.queue || ""),
    );
    if (seesWorker) row.append(element("td", { "data-label": "Worker", "data-field": "worker" }));
    row.append(cell("Sent", sent), cell("Updated", updated));
    render(row, task);
    return row;
  }

  function updateCounts(counts) {
    counts.forEach((c) => {
      const card = document.querySelector(`.tt-card[data-window="${c.window}"]`);
      if (!card) return;
      const total = card.querySelector("[data-total]");
      if (total) total.textContent = String(c.total);
      const list = card.querySelector(".tt-bystate");
      Object.entries(c.by_state).forEach(([state, n]) => {
        let count = card.querySelector(`[data-count="${state}"]`);
        if (!count && list) {
          list.querySelectorAll("li:not([data-state-count])").forEach((li) => li.remove());
          const item = element("li", { "data-state-count": state });
          const link = element("a", { href: `${list.dataset.listUrl || ""}?state=${encodeURIComponent(state)}` });
          link.append(element("span", { class: "tt-state", "data-state": state }, state));
          count = element("span", { "data-count": state });
          item.append(link, " ", count);
          list.append(item);
        }
        if (count) count.textContent = String(n);
      });
    });
    document.body.dataset.countsUpdated = String(Number(document.body.dataset.countsUpdated || 0) + 1);
  }

  class LiveList {
    constructor(table, rows) {
      this.table = table;
      this.rows = rows;
      this.url = new URL(table.dataset.streamUrl, window.location.href);
      this.cap = Number(table.dataset.liveCap || 200);
      this.seesWorker = table.dataset.seesWorker === "1";
      const controls = table.closest(".tt-scroll").previousElementSibling;
      this.button = controls && controls.querySelector("[data-live-pause]");
      this.status = controls && controls.querySelector("[data-live-status]");
      this.paused = false;
      if (this.button) this.button.addEventListener("click", () => this.toggle());
      this.open();
    }

    say(text) {
      if (this.status) this.status.textContent = text;
    }

    toggle() {
      this.paused = !this.paused;
      this.button.textContent = this.paused ? "Resume" : "Pause";
      this.button.setAttribute("aria-pressed", String(this.paused));
      this.table.dataset.livePaused = this.paused ? "1" : "";
      if (this.paused) {
        this.close();
        this.say("Paused: new tasks are not added until you resume.");
      } else {
        this.open();
      }
    }

    close() {
      if (this.source) this.source.close();
      this.source = null;
      clearTimeout(this.timer);
    }

    open() {
      this.say(`Live: new tasks appear at the top (at most ${this.cap} rows).`);
      if (this.polling || !window.EventSource) {
        this.poll();
        return;
      }
      let heard = false;
      this.source = new EventSource(this.url.toString(), { withCredentials: true });
      this.source.onopen = () => { this.table.dataset.streaming = "1"; };
      this.source.onmessage = (event) => {
        heard = true;
        if (event.lastEventId) this.url.searchParams.set("from", event.lastEventId);
        this.apply(JSON.parse(event.data));
      };
      this.source.onerror = () => {
        // Closed for good (an error status): ask why. Refused by a limit: poll the
        // same batch until Retry-After has passed, then stream again. Under WSGI (no
        // Retry-After), poll for good unless this stream had worked before.
        if (this.source && this.source.readyState === EventSource.CLOSED) {
          this.source = null;
          this.refused(heard);
        }
      };
    }

    async refused(heard) {
      // tasktrail.js's (every dashboard page loads it first): seconds until the stream
      // may be tried again, 0 if it would be admitted now, null if retrying will not help.
      const wait = await window.TaskTrail.retryAfter(this.url.toString());
      this.table.dataset.streamRefusals = String(Number(this.table.dataset.streamRefusals || 0) + 1);
      if (this.paused) return;
      if (wait === null && !heard) this.polling = true;
      if (wait) {
        this.polling = true;
        this.streamAt = Date.now() + wait * 1000;
      }
      this.timer = setTimeout(() => this.open(), POLL_MS);
    }

    async poll() {
      if (this.paused) return;
      const url = new URL(this.url);
      url.searchParams.set("once", "1");
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) {
          const data = await response.json();
          this.url.searchParams.set("from", data.cursor);
          this.apply(data);
        }
      } catch (error) {
        // The next poll tries again.
      }
      if (this.paused) return;
      if (this.streamAt && Date.now() >= this.streamAt) {
        // The refusal's Retry-After has passed: stream again.
        this.streamAt = 0;
        this.polling = false;
        this.open();
        return;
      }
      this.timer = setTimeout(() => this.poll(), POLL_MS);
    }

    apply(data) {
      if (data.counts) updateCounts(data.counts);
      const body = this.table.tBodies[0];
      (data.tasks || []).forEach((task) => {
        const found = body.querySelector(`tr[data-task-id="${CSS.escape(task.id)}"]`);
        if (this.table.dataset.liveList === "running" && task.phase === "done") {
          if (found) found.remove();
          return;
        }
        const row = found || buildRow(task, this.seesWorker);
        if (found) render(row, task);
        row.classList.add("tt-new");
        body.prepend(row);
      });
      if (data.tasks && data.tasks.length) {
        body.querySelectorAll("tr[data-empty]").forEach((row) => row.remove());
        const rows = body.querySelectorAll("tr[data-task-id]");
        for (let i = this.cap; i < rows.length; i++) rows[i].remove();
        if (this.rows) this.rows.schedule();
      }
      this.table.dataset.streamed = String(Number(this.table.dataset.streamed || 0) + 1);
    }
  }

  class LiveTable {
    constructor(table) {
      this.table = table;
      this.url = table.dataset.liveUrl;
      this.delay = POLL_MS;
      this.timer = null;
      this.schedule();
    }

    pending() {
      return Array.from(this.table.querySelectorAll("tr[data-task-id]")).filter(
        (row) => row.dataset.phase !== "done",
      );
    }

    schedule() {
      if (this.timer || !this.pending().length) return;
      this.timer = setTimeout(() => {
        this.timer = null;
        this.poll();
      }, this.delay);
    }

    async poll() {
      if (document.hidden) {
        document.addEventListener("visibilitychange", () => this.poll(), { once: true });
        return;
      }
      const rows = this.pending();
      const query = new URLSearchParams(rows.map((row) => ["id", row.dataset.taskId]));
      try {
        const response = await fetch(`${this.url}?${query}`, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const { tasks } = await response.json();
        rows.forEach((row) => {
          const task = tasks[row.dataset.taskId];
          if (task) render(row, task);
        });
        this.delay = POLL_MS;
      } catch (error) {
        this.delay = Math.min(MAX_POLL_MS, this.delay * 2);
      }
      this.table.dataset.polled = String(Number(this.table.dataset.polled || 0) + 1);
      this.schedule();
    }
  }

  function reloadWhenDone() {
    const detail = document.querySelector("[data-task-phase]");
    if (!detail || detail.dataset.taskPhase === "done") return;
    document.addEventListener("tasktrail:update", (event) => {
      if (event.detail.phase === "done") window.location.reload();
    });
  }

  function start() {
    confirmActions();
    document.querySelectorAll("table[data-live-url]").forEach((table) => {
      const rows = new LiveTable(table);
      if (table.dataset.streamUrl) new LiveList(table, rows);
    });
    reloadWhenDone();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
