// The molecule browser's Pareto panel: two chosen scores, a scatter of a uniform sample of the run's
// molecules with the non-dominated set highlighted (each point links to its molecule), and, for a
// preference-conditioned run, a weight per preference component and a button that starts a
// sampling job at those weights.
"use strict";
(() => {
  const { api, el, fmt, setState } = window.synflow;
  const { scatter } = window.synflowPlot;
  const runId = document.getElementById("browser").dataset.runId;
  const xSelect = document.getElementById("pareto-x");
  const ySelect = document.getElementById("pareto-y");
  const state = document.getElementById("pareto-state");
  const plot = document.getElementById("pareto-plot");
  const caption = document.getElementById("pareto-caption");
  const tbody = document.querySelector("#pareto-table tbody");
  const form = document.getElementById("weights");
  const sliders = document.getElementById("weight-sliders");
  const weightsState = document.getElementById("weights-state");
  const SAMPLE = 1500; // background molecules drawn (uniformly, fixed per molecule) for the scatter
  const LIMIT = 500; // non-dominated molecules shown at most (spread along the front)
  let ticket = 0; // the newest request: an older answer arriving late is dropped

  function frontUrl(scores) {
    const params = new URLSearchParams({ sample: String(SAMPLE), limit: String(LIMIT) });
    if (scores) params.set("scores", scores.join(","));
    return `/runs/${runId}/pareto?${params}`;
  }

  function fillSelects(available, x, y) {
    for (const select of [xSelect, ySelect]) {
      select.replaceChildren(...available.map((name) => el("option", { value: name, text: name })));
    }
    xSelect.value = x;
    ySelect.value = y;
  }

  function render(front) {
    const [x, y] = front.scores;
    const cloud = front.sample.map((p) => ({ x: p.values[0], y: p.values[1] }));
    const best = front.items.map((m) => ({
      x: m.scores[x], y: m.scores[y], href: `/molecules/${m.id}`,
      label: `Molecule ${m.id}: ${x} ${fmt(m.scores[x], 3)}, ${y} ${fmt(m.scores[y], 3)}`,
    }));
    scatter(plot, `Pareto front: ${y} against ${x}`, cloud, best, {
      xLabel: `${x} →`, yLabel: y, cloudLabel: "sampled molecules", frontLabel: "non-dominated",
    });
    const shown = front.items.length < front.front_size ? ` (${front.items.length} shown, spread along the front)` : "";
    const left = front.excluded ? `; ${fmt(front.excluded)} without both scores left out` : "";
    caption.textContent = `${fmt(front.front_size)} non-dominated of ${fmt(front.considered)} molecules${shown}${left}`;
    document.getElementById("pareto-col-x").textContent = x;
    document.getElementById("pareto-col-y").textContent = y;
    document.getElementById("pareto-table-caption").textContent = `Non-dominated molecules over ${x} and ${y}`;
    tbody.replaceChildren(...front.items.map((m) => el("tr", { "data-id": String(m.id) },
      el("td", {}, el("a", { href: `/molecules/${m.id}`, text: `Molecule ${m.id}`, title: m.smiles })),
      el("td", { class: "num", text: fmt(m.scores[x], 3) }),
      el("td", { class: "num", text: fmt(m.scores[y], 3) }))));
    setState(state, "", "");
  }

  async function draw() {
    const x = xSelect.value, y = ySelect.value;
    const mine = ++ticket;
    if (x === y) {
      setState(state, "error", "Choose two different scores.");
      return;
    }
    setState(state, "", "Computing the Pareto front…");
    plot.setAttribute("aria-busy", "true");
    try {
      const front = await api(frontUrl([x, y]));
      if (mine === ticket) render(front);
    } catch (err) {
      if (mine === ticket) setState(state, "error", `The Pareto front could not be computed: ${err.message}`);
    } finally {
      if (mine === ticket) plot.removeAttribute("aria-busy");
    }
  }

  // -- sampling at chosen weights (preference-conditioned runs) ----------------------------------

  function normalised() {
    const inputs = [...sliders.querySelectorAll("input[type=range]")];
    const total = inputs.reduce((sum, input) => sum + Number(input.value), 0);
    return { inputs, total };
  }

  function showShares() {
    const { inputs, total } = normalised();
    for (const input of inputs) {
      const share = total > 0 ? Number(input.value) / total : 0;
      const out = document.getElementById(`${input.id}-share`);
      out.textContent = `${Math.round(share * 100)} %`;
      input.setAttribute("aria-valuetext", `${Math.round(share * 100)} percent after normalising`);
    }
    document.getElementById("sample-weights").disabled = total <= 0;
    if (total <= 0) setState(weightsState, "error", "Give at least one weight above 0.");
    else if (weightsState.classList.contains("error")) setState(weightsState, "", "");
  }

  function buildSliders(components) {
    sliders.replaceChildren(...components.map((name, i) => {
      const id = `weight-${i}`;
      const input = el("input", { type: "range", id, min: "0", max: "1", step: "0.01",
        value: (1 / components.length).toFixed(2), "data-component": name, "aria-describedby": `${id}-share` });
      input.addEventListener("input", showShares);
      return el("div", { class: "weight" },
        el("label", { for: id, text: `${name} weight` }), input,
        el("output", { id: `${id}-share`, for: id, class: "share" }));
    }));
    showShares();
  }

  async function sampleAtWeights(event) {
    event.preventDefault();
    const { inputs, total } = normalised();
    if (total <= 0) return;
    const preference = Object.fromEntries(inputs.map((input) => [input.dataset.component, Number(input.value) / total]));
    const count = Number(document.getElementById("weights-count").value);
    const button = document.getElementById("sample-weights");
    button.disabled = true;
    setState(weightsState, "", "Starting a sampling job…");
    try {
      const job = await api(`/runs/${runId}/sample`, { method: "POST", json: { count, preference } });
      const weights = inputs.map((input) => `${input.dataset.component} ${fmt(preference[input.dataset.component], 2)}`).join(", ");
      weightsState.replaceChildren(`Sampling job queued at ${weights}: `,
        el("a", { href: `/runs/${job.id}`, id: "sample-job-link", text: job.name }),
        " (its molecules: ", el("a", { href: `/runs/${job.id}/molecules`, text: "browse" }), ").");
      weightsState.hidden = false;
      weightsState.className = "state ok";
    } catch (err) {
      const field = err.errors.length ? ` (${err.errors.map((e) => e.field).join(", ")})` : "";
      setState(weightsState, "error", `The sampling job was not started${field}: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async function preferenceComponents(defaults) {
    const run = await api(`/runs/${runId}`);
    const prefs = run.kind === "train" && run.config && run.config.conditioning && run.config.conditioning.preferences;
    if (!prefs) return null;
    return prefs.components || defaults;
  }

  async function init() {
    let first;
    try {
      first = await api(frontUrl(null)); // the run's default scores, and every name it offers
    } catch (err) {
      setState(state, "error", err.status === 422
        ? `No Pareto front: ${err.message}` : `The Pareto front could not be computed: ${err.message}`);
      return;
    }
    fillSelects(first.available, first.scores[0], first.scores[1]);
    if (first.scores.length === 2) render(first); else draw();
    xSelect.addEventListener("change", draw);
    ySelect.addEventListener("change", draw);
    try {
      const components = await preferenceComponents(first.scores);
      if (components) {
        buildSliders(components);
        form.hidden = false;
        form.addEventListener("submit", sampleAtWeights);
      }
    } catch (_) { /* the weight picker stays hidden */ }
  }

  init();
})();
