/* tasktrail dashboard: no dependencies, no build step.
 *
 * 1. Actions ask before they act: a form with data-confirm submits only after
 *    confirm(), and then says so (confirmed=yes). Without JavaScript the server asks
 *    instead, on a confirmation page.
 * 2. Rows of tasks that are not done follow their tasks: one request for all of a
 *    table's rows every POLL_MS (the live endpoint reads them by primary key), paused
 *    while the tab is hidden, stopped when every row is done.
 * 3. A task's page reloads once when its task ends, to show its result and timeline.
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
    setText(row, "state", task.state);
    setText(row, "progress", task.progress);
    setText(row, "worker", task.worker);
    const updated = setText(row, "updated", task.updated_at.replace("T", " ").slice(0, 19));
    if (updated) updated.setAttribute("datetime", task.updated_at);
    const bar = row.querySelector('[data-field="bar"]');
    if (!bar) return;
    if (task.percent !== null) bar.value = task.percent;
    else if (task.phase === "running") bar.removeAttribute("value"); // indeterminate
    else if (task.phase === "done") bar.value = task.state === "SUCCESS" ? 100 : 0;
  }

  class LiveTable {
    constructor(table) {
      this.table = table;
      this.url = table.dataset.liveUrl;
      this.delay = POLL_MS;
      this.schedule();
    }

    pending() {
      return Array.from(this.table.querySelectorAll("tr[data-task-id]")).filter(
        (row) => row.dataset.phase !== "done",
      );
    }

    schedule() {
      if (this.pending().length) setTimeout(() => this.poll(), this.delay);
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
    document.querySelectorAll("table[data-live-url]").forEach((table) => new LiveTable(table));
    reloadWhenDone();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
