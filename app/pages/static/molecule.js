// One molecule: facts, every score, and its synthesis route drawn as a scheme.
"use strict";
(() => {
  const { api, el, fmt, fmtTime, setState } = window.synflow;
  const root = document.getElementById("molecule");
  const moleculeId = root.dataset.moleculeId;

  function depiction(smiles, caption, extra) {
    const src = `/pages/depict.svg?smiles=${encodeURIComponent(smiles)}&width=220&height=160`;
    return el("figure", {}, el("img", { src, alt: smiles, width: 220, height: 160, loading: "lazy" }),
      el("figcaption", {}, caption, extra ? el("br") : null, extra || null));
  }

  let blockFlags = new Map(); // route step -> purchasable (true / false / null), from the run's catalogue

  function purchasableBadge(flag, subject) {
    if (flag !== true && flag !== false) return null;
    return el("span", { class: `badge ${flag ? "ok" : "warn"}`, "data-purchasable": String(flag),
      text: flag ? "purchasable" : "not purchasable", title: `${subject} ${flag ? "is" : "is not"} in the run's catalogue` });
  }

  function blockFigure(block, step) {
    const badge = purchasableBadge(blockFlags.get(step), "this building block");
    return depiction(block.smiles, "building block ", el("span", {},
      el("span", { class: "catalogue-id", text: block.id || "no ID" }), badge ? el("br") : null, badge));
  }

  // The molecule's own flag and alerts (null: the run's reward had no such component).
  function showNotes(m, source) {
    const parts = [];
    const badge = purchasableBadge(m.purchasable, "this molecule");
    if (badge) {
      parts.push(el("p", {}, badge, source ? el("span", { class: "hint", text: ` catalogue: ${source}` }) : null));
    }
    if (Array.isArray(m.alerts)) {
      parts.push(m.alerts.length
        ? el("div", {}, el("span", { class: "badge warn", text: `${m.alerts.length} structural alert${m.alerts.length > 1 ? "s" : ""}` }),
            el("ul", { class: "alerts", id: "mol-alerts" }, ...m.alerts.map((a) => el("li", { text: a }))))
        : el("p", {}, el("span", { class: "badge ok", id: "mol-no-alerts", text: "no structural alerts" })));
    }
    document.getElementById("mol-notes").replaceChildren(...parts);
    document.getElementById("mol-notes-section").hidden = !parts.length;
  }

  function stepNode(step, i, steps) {
    const isLast = i === steps.length - 1;
    const productLabel = isLast ? "final product" : `intermediate ${i + 1}`;
    const n = el("span", { class: "n", text: String(i + 1), "aria-hidden": "true" });
    if (step.action === "start") {
      return el("li", { class: "route-step", "data-action": "start", "aria-label": `Step ${i + 1}: start from a building block` },
        n, blockFigure(step.building_block || { smiles: step.product }, i),
        el("div", { class: "arrow" }, el("div", { class: "reaction", text: "start" }), el("div", { class: "glyph", text: "→" })),
        depiction(step.product, isLast ? "final product" : "starting material"));
    }
    const previous = steps[i - 1] ? steps[i - 1].product : null;
    const reactants = el("div", { class: "reactants" });
    const current = previous ? depiction(previous, `intermediate ${i}`) : null;
    if (step.action === "react_bi" && step.building_block) {
      const block = blockFigure(step.building_block, i);
      // slot: the current molecule's position among the template's reactants.
      const ordered = step.slot === 1 ? [block, current] : [current, block];
      ordered.filter(Boolean).forEach((node, k) => { if (k) reactants.append(el("span", { class: "plus", text: "+" })); reactants.append(node); });
    } else if (current) {
      reactants.append(current);
    }
    const template = step.template || {};
    const name = template.name || (template.index !== undefined ? `template ${template.index}` : step.action);
    return el("li", { class: "route-step", "data-action": step.action, "aria-label": `Step ${i + 1}: ${name}` },
      n, reactants,
      el("div", { class: "arrow" },
        el("div", { class: "reaction", text: name }),
        el("div", { class: "glyph", text: "→" }),
        el("div", { class: "hint", text: step.action === "react_bi" ? "bimolecular" : "unimolecular" }),
        template.smarts ? el("code", { class: "smarts", text: template.smarts }) : null),
      depiction(step.product, productLabel));
  }

  async function init() {
    try {
      const m = await api(`/molecules/${moleculeId}`);
      setState(document.getElementById("mol-state"), "", "");
      document.getElementById("mol-facts").replaceChildren(...[
        ["SMILES", m.smiles], ["InChIKey", m.inchikey || "–"], ["Reward", fmt(m.reward)],
        ["First sampled at step", fmt(m.step)], ["Times sampled", fmt(m.times_sampled)], ["First seen", fmtTime(m.first_seen)],
      ].map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))));
      const rows = [["reward", m.reward], ...Object.entries(m.scores || {})];
      document.querySelector("#scores tbody").replaceChildren(...rows.map(([k, v]) =>
        el("tr", {}, el("th", { scope: "row", text: k }), el("td", { class: "num", text: fmt(v) }))));
      // Block flags are a nicety: the page still shows the route when the catalogue cannot be read.
      const blocks = await api(`/molecules/${moleculeId}/building-blocks`).catch(() => null);
      blockFlags = new Map(((blocks && blocks.items) || []).map((b) => [b.step, b.purchasable]));
      showNotes(m, blocks && blocks.source);
      const steps = (m.route && m.route.steps) || [];
      const routeState = document.getElementById("route-state");
      if (!steps.length) setState(routeState, "", "No synthesis route was recorded for this molecule.");
      else setState(routeState, "", `${steps.filter((s) => s.action !== "start").length} reaction(s) from ${steps.filter((s) => s.building_block).length} building block(s).`);
      document.getElementById("route").replaceChildren(...steps.map(stepNode));
    } catch (err) {
      setState(document.getElementById("mol-state"), "error", `The molecule could not be loaded: ${err.message}`);
    }
  }
  init();
})();
