// A run's dashboard: server-sent events drive status and cards; curves and molecules refresh
// from the REST API at most every few seconds while the run trains, and once when it ends.
"use strict";
(() => {
  const { api, el, fmt, fmtTime, fmtDuration, secondsBetween, statusBadge, progressBar, setState } = window.synflow;
  const { lineChart, histogram } = window.synflowPlot;
  const root = document.getElementById("dashboard");
  const runId = root.dataset.runId;
  const live = document.getElementById("live");
  const REFRESH_MS = 3000;
  const HIST_LIMIT = 1000;
  let config = null;
  let lastRefresh = 0;
  let pending = null;
  let lastStep = -1;

  function text(id, value) { document.getElementById(id).textContent = value; }

  function showRun(run) {
    const status = document.getElementById("run-status");
    status.replaceChildren(statusBadge(run.status));
    document.getElementById("run-progress").replaceChildren(progressBar(run.progress, "Training progress"));
    const m = run.latest_metrics || {};
    text("c-step", `${fmt(run.progress.step)} / ${fmt(run.progress.total_steps)}`);
    text("c-molecules", fmt(run.molecules));
    text("c-unique", fmt(m.unique));
    text("c-modes", fmt(m.modes));
    text("c-top10", fmt(m.top10_reward));
    text("c-loss", fmt(m.loss));
    text("c-logz", fmt(m.log_z));
    text("c-logz-devgrad", fmt(m.log_z_devgrad));
    text("c-ess", fmt(m.ess));
    text("c-balance", fmt(m.balance_corr));
    text("c-logp-corr", fmt(m.log_p_corr));
    text("c-logp-error", fmt(m.log_p_error));
    text("c-unverified", fmt(m.unverified_products));
    text("c-device", run.device || "–");
    text("c-started", run.started_at ? fmtTime(run.started_at).split(", ").pop() : "–");
    text("c-elapsed", run.started_at ? fmtDuration(secondsBetween(run.started_at, run.finished_at)) : "–");
    text("c-eta", run.status === "running" ? fmtDuration(run.progress.eta_seconds) : "–");
    text("c-attempts", fmt(run.attempts));
    document.getElementById("cancel").disabled = !(run.status === "queued" || run.status === "running") || run.cancel_requested;
    document.getElementById("resume").disabled = !(run.status === "failed" || run.status === "cancelled");
    // a finished training run's final checkpoint can be shared as a generator file
    document.getElementById("download-generator").hidden =
      !(run.kind === "train" && run.status === "succeeded" && run.checkpoint_step !== null);
    const error = document.getElementById("run-error");
    setState(error, "error", run.error ? `The run failed: ${run.error}` : "");
    text("c-stop", run.stop_reason || (run.status === "succeeded" ? "all steps done" : "–"));
    const timings = document.getElementById("timings");
    timings.replaceChildren(...[
      ["Created", fmtTime(run.created_at)], ["Started", fmtTime(run.started_at)],
      ["Finished", fmtTime(run.finished_at)], ["Last heartbeat", fmtTime(run.heartbeat_at)],
      ["Worker", run.worker_id || "–"], ["Device", run.device || "–"],
      ["Checkpoint at step", fmt(run.checkpoint_step)],
      ["Seconds per step", run.progress.step && run.started_at
        ? fmt(secondsBetween(run.started_at, run.finished_at) / run.progress.step, 2) : "–"],
    ].map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))));
  }

  function series(metrics, name) {
    return (metrics[name] || []).map((p) => [p.step, p.value]);
  }

  // α from the trainer's metric when it reports one, otherwise the config's schedule (the same
  // deterministic function of the step the trainer uses).
  function alphaSeries(metrics, totalSteps) {
    if (metrics.alpha && metrics.alpha.length) {
      text("alpha-source", "(reported by the trainer)");
      return series(metrics, "alpha");
    }
    const loss = (config && config.loss) || {};
    const fixed = { reverse_kl: 1, forward_kl: 0, pearson: 2, neyman: -1, hellinger: 0.5 };
    text("alpha-source", "(from the config's schedule)");
    if (loss.divergence === "alpha" && loss.alpha_schedule) {
      const s = loss.alpha_schedule;
      const points = [];
      for (let i = 0; i <= 50; i++) {
        const step = (totalSteps * i) / 50;
        let t = Math.min(Math.max(step / s.steps, 0), 1);
        if (s.kind === "cosine") t = 0.5 * (1 - Math.cos(Math.PI * t));
        const a = s.kind === "constant" || s.end === null ? s.start : s.start + (s.end - s.start) * t;
        points.push([step, a]);
      }
      return points;
    }
    const a = loss.divergence === "alpha" ? loss.alpha : fixed[loss.divergence];
    if (a === undefined || a === null) {
      text("alpha-source", `(${loss.divergence || "this divergence"} is not an α-divergence)`);
      return [];
    }
    return [[0, a], [Math.max(1, totalSteps), a]];
  }

  async function refreshCurves(run) {
    const { metrics } = await api(`/runs/${runId}/metrics?max_points=400`);
    lineChart(document.getElementById("p-reward"), "Reward over steps", [
      { label: "mean", points: series(metrics, "reward_mean") },
      { label: "top-1", points: series(metrics, "top1_reward") },
      { label: "top-10", points: series(metrics, "top10_reward") },
      { label: "top-100", points: series(metrics, "top100_reward") },
    ]);
    lineChart(document.getElementById("p-loss"), "Loss over steps", [{ label: "loss", points: series(metrics, "loss") }]);
    lineChart(document.getElementById("p-logz"), "log Z over steps", [{ label: "log Z", points: series(metrics, "log_z") }]);
    lineChart(document.getElementById("p-unique"), "Unique molecules and modes over steps", [
      { label: "unique", points: series(metrics, "unique") },
      { label: "modes", points: series(metrics, "modes") },
    ]);
    lineChart(document.getElementById("p-alpha"), "Alpha over steps",
      [{ label: "α", points: alphaSeries(metrics, run.progress.total_steps) }],
      { emptyText: "Not an α-divergence" });
  }

  async function refreshMolecules() {
    const page = await api(`/runs/${runId}/molecules?sort=-reward&limit=${HIST_LIMIT}`);
    const rewards = page.items.map((m) => m.reward);
    text("hist-note", page.next_cursor ? `(best ${HIST_LIMIT} molecules)` : `(all ${rewards.length} molecules)`);
    histogram(document.getElementById("p-hist"), "Histogram of rewards", [{ label: "molecules", values: rewards }]);
    const best = document.getElementById("best");
    best.replaceChildren(...page.items.slice(0, 8).map(moleculeCard));
    setState(document.getElementById("best-state"), "", page.items.length ? "" : "No molecules yet: they appear as the run samples them.");
  }

  function moleculeCard(m) {
    return el("li", { class: "mol-card" },
      el("a", { href: `/molecules/${m.id}`, "aria-label": `Molecule ${m.id}, reward ${fmt(m.reward)}` },
        el("img", { src: `${"/api/v1"}/molecules/${m.id}/svg?width=220&height=160`, alt: m.smiles, width: 220, height: 160, loading: "lazy" })),
      el("div", { class: "mol-meta" }, el("strong", { text: `reward ${fmt(m.reward)}` }),
        el("span", { class: "smiles", text: m.smiles, title: m.smiles })));
  }

  async function refreshAll(run) {
    lastRefresh = Date.now();
    try {
      await Promise.all([refreshCurves(run), refreshMolecules()]);
    } catch (err) {
      setState(document.getElementById("best-state"), "error", `Could not load results: ${err.message}`);
    }
  }

  // Throttled: at most one refresh per REFRESH_MS; the latest snapshot wins.
  function scheduleRefresh(run, now) {
    if (now) { clearTimeout(pending); pending = null; refreshAll(run); return; }
    if (pending) return;
    const wait = Math.max(0, REFRESH_MS - (Date.now() - lastRefresh));
    pending = setTimeout(() => { pending = null; refreshAll(run); }, wait);
  }

  // An EventSource cannot send the bearer header: with a token stored, ask the API for a short-lived
  // token scoped to this run's stream and put it in the URL; a fresh one on every (re)connection.
  let ended = false;
  async function streamUrl() {
    const url = `/api/v1/runs/${runId}/events`;
    if (!window.localStorage.getItem("synflow-token")) return url;
    const { token } = await api(`/runs/${runId}/events-token`, { method: "POST" });
    return `${url}?token=${encodeURIComponent(token)}`;
  }

  async function connect() {
    ended = false;
    let url;
    try {
      url = await streamUrl();
    } catch (err) {
      live.textContent = `No live updates: ${err.message}`;
      return null;
    }
    const source = new EventSource(url);
    source.addEventListener("open", () => { live.textContent = "Live: updates stream from the server."; });
    source.addEventListener("progress", (event) => {
      const run = JSON.parse(event.data);
      showRun(run);
      if (run.progress.step !== lastStep) { lastStep = run.progress.step; scheduleRefresh(run, false); }
      live.dataset.step = String(run.progress.step);
    });
    source.addEventListener("end", async (event) => {
      ended = true;
      source.close();
      const { status } = JSON.parse(event.data);
      live.textContent = `The run ended: ${status}.`;
      const run = await api(`/runs/${runId}`);
      showRun(run);
      scheduleRefresh(run, true);
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) { live.textContent = "Reconnecting…"; return; }
      // Refused (e.g. its token expired on an automatic reconnection): start over with a new token.
      live.textContent = "The live connection closed; reconnecting…";
      if (!ended) setTimeout(connect, 2000);
    });
    return source;
  }

  async function action(kind) {
    const button = document.getElementById(kind);
    button.disabled = true;
    try {
      const run = await api(`/runs/${runId}/${kind}`, { method: "POST" });
      showRun(run);
      if (kind === "resume") connect();
    } catch (err) {
      setState(document.getElementById("run-error"), "error", `${kind} failed: ${err.message}`);
    }
  }

  // A fetch, not a plain link: with auth on, the download needs the bearer header.
  async function downloadGenerator() {
    const button = document.getElementById("download-generator");
    const token = window.localStorage.getItem("synflow-token");
    button.disabled = true;
    try {
      const response = await fetch(`/api/v1/runs/${runId}/generator`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.message || `HTTP ${response.status}`);
      }
      const name = (/filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "") || [])[1] || `${runId}.safetensors`;
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      setState(document.getElementById("run-error"), "error", `The generator could not be downloaded: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async function init() {
    document.getElementById("cancel").addEventListener("click", () => action("cancel"));
    document.getElementById("download-generator").addEventListener("click", downloadGenerator);
    document.getElementById("resume").addEventListener("click", () => action("resume"));
    try {
      const run = await api(`/runs/${runId}`);
      config = run.config;
      document.getElementById("config").textContent = JSON.stringify(run.config, null, 2);
      showRun(run);
      scheduleRefresh(run, true);
      if (["queued", "running"].includes(run.status)) connect();
      else live.textContent = `The run ended: ${run.status}.`;
    } catch (err) {
      setState(document.getElementById("run-error"), "error", `The run could not be loaded: ${err.message}`);
      live.textContent = "";
    }
  }
  init();
})();
