// A molecule's docked pose in the receptor pocket, drawn with 3Dmol.js (vendored, loaded only when
// the molecule has a pose): receptor as a cartoon, residues within 5 Å of the ligand as sticks,
// the ligand as sticks, the docking box as lines; zoomed to the ligand. Affinity and box beside it.
"use strict";
(() => {
  const { api, authHeaders, el, fmt, setState } = window.synflow;
  const THREEDMOL = "/pages/static/vendor/3Dmol-2.5.5.min.js";
  const root = document.getElementById("molecule");
  const section = document.getElementById("pose-section");
  const moleculeId = root.dataset.moleculeId;

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      if (window.$3Dmol) { resolve(); return; }
      const script = el("script", { src });
      script.onload = () => resolve();
      script.onerror = () => reject(new Error(`${src} could not be loaded`));
      document.head.append(script);
    });
  }

  // The SDF and PDBQT are text, not JSON: fetched with the page's credentials like api() does.
  async function text(url) {
    const response = await fetch(url, { headers: authHeaders() });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.text();
  }

  function download(content, name, label) {
    const href = URL.createObjectURL(new Blob([content], { type: "text/plain" }));
    return el("a", { href, download: name, text: label });
  }

  function facts(docking, pose, receptor) {
    const triple = (v) => (v ? v.map((x) => x.toFixed(1)).join(", ") : "–");
    const rows = [
      ["Vina affinity (kcal/mol)", docking.affinity === null ? "–" : fmt(docking.affinity), "affinity"],
      ["Receptor", docking.receptor_name || "–"],
      ["Box centre (Å)", triple(docking.center)],
      ["Box edges (Å)", triple(docking.size)],
      ["Exhaustiveness · seed", `${docking.exhaustiveness ?? "–"} · ${docking.seed ?? "–"}`],
    ];
    const items = rows.map(([k, v, cls]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v, class: cls || "" })));
    const links = el("dd", {}, download(pose, `molecule-${moleculeId}-pose.sdf`, "pose (SDF)"),
      receptor ? " · " : null, receptor ? download(receptor, "receptor.pdbqt", "receptor (PDBQT)") : null);
    return [...items, el("div", {}, el("dt", { text: "Download" }), links)];
  }

  const CARTOON = { color: "#c7d2e0", opacity: 0.55 };

  // Residues with an atom within `distance` Å of a ligand heavy atom, as [chain, [resi...]] (3Dmol's
  // `within` selection looks inside one model only, and receptor and ligand are two).
  function pocketResidues(protein, ligand, distance) {
    const ligandAtoms = ligand.selectedAtoms({ not: { elem: "H" } });
    const limit = distance * distance;
    const byChain = new Map();
    for (const a of protein.selectedAtoms({})) {
      if (ligandAtoms.some((b) => (a.x - b.x) ** 2 + (a.y - b.y) ** 2 + (a.z - b.z) ** 2 <= limit)) {
        if (!byChain.has(a.chain)) byChain.set(a.chain, new Set());
        byChain.get(a.chain).add(a.resi);
      }
    }
    return [...byChain].map(([chain, resi]) => [chain, [...resi]]);
  }

  function draw(container, pose, receptor, docking) {
    const $3Dmol = window.$3Dmol;
    const viewer = $3Dmol.createViewer(container, { backgroundColor: "white", antialias: true });
    let protein = null;
    if (receptor) {
      protein = viewer.addModel(receptor, "pdbqt");
      protein.setStyle({}, { cartoon: CARTOON });
    }
    const ligand = viewer.addModel(pose, "sdf");
    ligand.setStyle({}, { stick: { colorscheme: "orangeCarbon", radius: 0.3 } });
    ligand.setStyle({ elem: "H" }, {});  // heavy atoms only: hydrogens clutter the pocket view
    if (protein) {
      for (const [chain, resi] of pocketResidues(protein, ligand, 5)) {
        protein.setStyle({ chain, resi }, { stick: { colorscheme: "greenCarbon", radius: 0.12 } }, true);  // added to the cartoon
      }
      protein.setStyle({ elem: "H" }, { cartoon: CARTOON });  // no hydrogen sticks
    }
    if (docking.center && docking.size) {
      const [x, y, z] = docking.center;
      const [w, h, d] = docking.size;
      viewer.addBox({ center: { x, y, z }, dimensions: { w, h, d }, wireframe: true, color: "#98a2b3" });
    }
    viewer.zoomTo({ model: ligand });
    viewer.zoom(0.7);  // a little of the pocket around the ligand
    viewer.render();
    container.dataset.rendered = "true";  // for tests and screenshots: the scene is drawn
  }

  async function init() {
    const state = document.getElementById("pose-state");
    try {
      const m = await api(`/molecules/${moleculeId}`);
      if (!m.pose_url) return;  // no docking component kept a pose: the section stays hidden
      section.hidden = false;
      setState(state, "", "Loading the pose…");
      const docking = await api(`/molecules/${moleculeId}/docking`);
      const [pose, receptor] = await Promise.all([
        text(docking.pose_url),
        docking.receptor_url ? text(docking.receptor_url) : Promise.resolve(null),
      ]);
      document.getElementById("pose-facts").replaceChildren(...facts(docking, pose, receptor));
      await loadScript(THREEDMOL);
      draw(document.getElementById("pose-viewer"), pose, receptor, docking);
      setState(state, "", receptor ? "" : "The receptor file is missing: the ligand is shown alone.");
    } catch (err) {
      section.hidden = false;
      setState(state, "error", `The docked pose could not be shown: ${err.message}`);
    }
  }
  init();
})();
