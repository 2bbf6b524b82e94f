// The molecule browser: filtered, sorted, cursor-paged grid; a selection kept across pages and
// exported as CSV/SDF; a side-by-side comparison with another run.
"use strict";
(() => {
  const { api, el, fmt, setState } = window.synflow;
  const { histogram } = window.synflowPlot;
  const root = document.getElementById("browser");
  const runId = root.dataset.runId;
  const form = document.getElementById("filters");
  const grid = document.getElementById("grid");
  const gridState = document.getElementById("grid-state");
  const COMPARE_LIMIT = 1000;
  const selected = new Map(); // id -> smiles, across pages
  let cursors = [null]; // cursor of each page visited; the last entry is the current page's
  let nextCursor = null;
  let items = [];
  let scoreNames = [];

  function query(cursor) {
    const params = new URLSearchParams();
    for (const input of form.querySelectorAll("[name]")) {
      const value = input.value.trim();
      if (value !== "") params.set(input.name, value);
    }
    if (!params.get("similar_to")) params.delete("min_similarity");
    if (cursor) params.set("cursor", cursor);
    return params;
  }

  function clearErrors() {
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  function showErrors(err) {
    let placed = false;
    for (const { field, message } of err.errors) {
      const input = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
      if (!input) continue;
      input.setAttribute("aria-invalid", "true");
      input.closest(".field").querySelector(".field-error").textContent = message;
      if (!placed) input.focus();
      placed = true;
    }
    setState(gridState, "error", placed ? "Fix the highlighted filter to see molecules." : `Molecules could not be loaded: ${err.message}`);
  }

  function scoresText(scores) {
    return Object.entries(scores || {}).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(" · ");
  }

  // What the reward's alerts / purchasability components found (null: no such component ran).
  function notesLine(m) {
    const badges = [];
    if (m.purchasable === true || m.purchasable === false) {
      badges.push(el("span", { class: `badge ${m.purchasable ? "ok" : "warn"}`, "data-note": "purchasable",
        text: m.purchasable ? "purchasable" : "not purchasable" }));
    }
    if (Array.isArray(m.alerts)) {
      badges.push(el("span", { class: `badge ${m.alerts.length ? "warn" : "ok"}`, "data-note": "alerts",
        title: m.alerts.join("\n"), text: m.alerts.length ? `${m.alerts.length} alert${m.alerts.length > 1 ? "s" : ""}` : "no alerts" }));
    }
    return badges.length ? el("span", { class: "notes" }, ...badges) : null;
  }

  function card(m) {
    const boxId = `sel-${m.id}`;
    const box = el("input", { type: "checkbox", id: boxId, checked: selected.has(m.id) });
    const node = el("li", { class: `mol-card${selected.has(m.id) ? " selected" : ""}`, "data-id": String(m.id) },
      el("label", { class: "select-box", for: boxId }, box, "select"),
      el("a", { href: `/molecules/${m.id}`, "aria-label": `Molecule ${m.id}, reward ${fmt(m.reward)}` },
        el("img", { src: `/api/v1/molecules/${m.id}/svg?width=220&height=160`, alt: m.smiles, width: 220, height: 160, loading: "lazy" })),
      el("div", { class: "mol-meta" },
        el("strong", { text: `reward ${fmt(m.reward)}` + (m.similarity !== null && m.similarity !== undefined ? ` · similarity ${fmt(m.similarity, 2)}` : "") }),
        el("span", { class: "scores", text: scoresText(m.scores) }),
        notesLine(m),
        el("span", { class: "hint", text: `step ${m.step} · sampled ${m.times_sampled}×` }),
        el("span", { class: "smiles", text: m.smiles, title: m.smiles })));
    box.addEventListener("change", () => {
      if (box.checked) selected.set(m.id, m.smiles); else selected.delete(m.id);
      node.classList.toggle("selected", box.checked);
      updateSelection();
    });
    return node;
  }

  function updateSelection() {
    const n = selected.size;
    document.getElementById("selection-count").textContent = `${n} selected`;
    document.getElementById("export-csv").disabled = n === 0;
    document.getElementById("export-sdf").disabled = n === 0;
  }

  function addScoreSorts(found) {
    const select = document.getElementById("q-sort");
    for (const name of found) {
      if (scoreNames.includes(name)) continue;
      scoreNames.push(name);
      select.append(el("option", { value: `-scores.${name}`, text: `${name}, best first` }));
    }
  }

  async function load() {
    clearErrors();
    setState(gridState, "", "Loading molecules…");
    grid.setAttribute("aria-busy", "true");
    const cursor = cursors[cursors.length - 1];
    try {
      const page = await api(`/runs/${runId}/molecules?${query(cursor)}`);
      items = page.items;
      nextCursor = page.next_cursor;
      addScoreSorts([...new Set(items.flatMap((m) => Object.keys(m.scores || {})))]);
      grid.replaceChildren(...items.map(card));
      const filtered = query(null).has("smarts") || query(null).has("similar_to") || query(null).has("reward_min") || query(null).has("reward_max") || query(null).has("purchasable") || query(null).has("alerts");
      if (!items.length) {
        setState(gridState, "", filtered ? "No molecule matches these filters." : "This run has no molecules yet.");
      } else {
        setState(gridState, "", "");
      }
      document.getElementById("page-info").textContent = items.length ? `Page ${cursors.length} · ${items.length} shown` : "";
      document.getElementById("prev").disabled = cursors.length <= 1;
      document.getElementById("next").disabled = !nextCursor;
    } catch (err) {
      grid.replaceChildren();
      if (err.status === 422) showErrors(err);
      else setState(gridState, "error", `Molecules could not be loaded: ${err.message}`);
    } finally {
      grid.removeAttribute("aria-busy");
    }
  }

  async function exportSelection(format) {
    const body = new FormData();
    body.set("ids", [...selected.keys()].join(","));
    body.set("format", format);
    const response = await fetch(`/runs/${runId}/molecules/export`, { method: "POST", body, headers: authHeaders() });
    if (!response.ok) {
      setState(gridState, "error", `Export failed: ${await response.text()}`);
      return;
    }
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: `${runId}-selection.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 5000);
  }

  async function bestRewards(id) {
    const page = await api(`/runs/${id}/molecules?sort=-reward&limit=${COMPARE_LIMIT}`);
    return page.items.map((m) => m.reward);
  }

  function mean(values) { return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null; }

  function statsRows(run, rewards) {
    const m = run.latest_metrics || {};
    const loss = (run.config && run.config.loss) || {};
    return {
      Divergence: loss.divergence === "alpha" ? `alpha (${loss.alpha ?? "scheduled"})` : loss.divergence || "–",
      Status: run.status,
      "Molecules stored": fmt(run.molecules),
      "Unique sampled": fmt(m.unique),
      Modes: fmt(m.modes),
      Scaffolds: fmt(m.scaffolds),
      "Top-10 reward": fmt(m.top10_reward),
      "Top-100 reward": fmt(m.top100_reward),
      "Top-100 diversity (1 − mean Tanimoto)": fmt(m.top100_diversity),
      [`Mean reward (best ${COMPARE_LIMIT})`]: fmt(mean(rewards)),
    };
  }

  async function compare() {
    const other = document.getElementById("compare-run").value;
    const ids = other ? [runId, other] : [runId];
    try {
      const runs = await Promise.all(ids.map((id) => api(`/runs/${id}`)));
      const rewards = await Promise.all(ids.map(bestRewards));
      histogram(document.getElementById("compare-hist"), "Reward distributions",
        runs.map((r, i) => ({ label: r.name, values: rewards[i] })), { density: true, range: [0, 1] });
      const tables = runs.map((r, i) => statsRows(r, rewards[i]));
      document.getElementById("compare-a").textContent = runs[0].name;
      document.getElementById("compare-b").textContent = runs[1] ? runs[1].name : "–";
      document.querySelector("#compare-table tbody").replaceChildren(...Object.keys(tables[0]).map((key) =>
        el("tr", {}, el("th", { scope: "row", text: key }), el("td", { class: "num", text: tables[0][key] }),
          el("td", { class: "num", text: tables[1] ? tables[1][key] : "–" }))));
    } catch (err) {
      document.querySelector("#compare-table tbody").replaceChildren(
        el("tr", {}, el("td", { colspan: "3", class: "state error", text: `Comparison failed: ${err.message}` })));
    }
  }

  async function fillRuns() {
    try {
      const page = await api("/runs?limit=100");
      const select = document.getElementById("compare-run");
      for (const run of page.items) {
        if (run.id !== runId) select.append(el("option", { value: run.id, text: `${run.name} (${run.status})` }));
      }
    } catch (_) { /* comparison stays with this run alone */ }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); cursors = [null]; load(); });
  form.addEventListener("reset", () => setTimeout(() => { cursors = [null]; load(); }, 0));
  document.getElementById("next").addEventListener("click", () => { cursors.push(nextCursor); load(); });
  document.getElementById("prev").addEventListener("click", () => { cursors.pop(); load(); });
  document.getElementById("select-page").addEventListener("click", () => {
    for (const m of items) selected.set(m.id, m.smiles);
    for (const box of grid.querySelectorAll("input[type=checkbox]")) { box.checked = true; box.closest("li").classList.add("selected"); }
    updateSelection();
  });
  document.getElementById("clear-selection").addEventListener("click", () => {
    selected.clear();
    for (const box of grid.querySelectorAll("input[type=checkbox]")) { box.checked = false; box.closest("li").classList.remove("selected"); }
    updateSelection();
  });
  document.getElementById("export-csv").addEventListener("click", () => exportSelection("csv"));
  document.getElementById("export-sdf").addEventListener("click", () => exportSelection("sdf"));
  document.getElementById("compare-run").addEventListener("change", compare);
  load();
  fillRuns();
  compare();
})();
