// Behaviour the page adds to Gradio's components (runs once when the page loads).
() => {
  const score = () => document.querySelector("#score-btn button, button#score-btn")?.click();
  // Enter scores; Shift+Enter makes a new line.
  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (event.key !== "Enter" || event.isComposing || !box.closest?.("#prompt")) return;
    event.preventDefault();
    event.stopImmediatePropagation();  // Gradio's own handler would take Shift+Enter as "submit"
    if (!event.shiftKey) return score();
    box.setRangeText("\n", box.selectionStart, box.selectionEnd, "end");
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }, true);
  // A verdict without the mouse: A or ←, B or →, T (tie), X (both bad), when a pair is shown and no text is typed.
  const VERDICT_KEYS = { a: "a", arrowleft: "a", b: "b", arrowright: "b", t: "tie", x: "both_bad" };
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
    if (target.closest?.("input, textarea, select, [contenteditable], #ranked, #images, [role=listbox]")) return;
    const verdict = VERDICT_KEYS[event.key.toLowerCase()];
    if (!verdict || !document.getElementById("compare-text")?.textContent.trim()) return;
    const button = document.querySelector(`#verdict-${verdict}`);
    if (!button) return;
    event.preventDefault();
    button.click();
  });
  // Images dropped anywhere on the page are added to the images, instead of the browser opening the file.
  const imageFiles = (list) => Array.from(list || []).filter((f) => f.type.startsWith("image/"));
  document.addEventListener("dragover", (event) => { if (event.dataTransfer?.types?.includes("Files")) event.preventDefault(); });
  document.addEventListener("drop", (event) => {
    if (!event.dataTransfer?.files?.length || event.target.closest?.("#images")) return;
    event.preventDefault();
    const input = document.querySelector("#images input[type=file]");
    const files = imageFiles(event.dataTransfer.files);
    if (!input || !files.length) return;
    const transfer = new DataTransfer();
    files.forEach((f) => transfer.items.add(f));
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
  // The status is announced to screen readers, and new results are scrolled into view.
  const watch = () => {
    const status = document.getElementById("status");
    if (!status) return setTimeout(watch, 200);
    status.setAttribute("aria-live", "polite");
    status.setAttribute("role", "status");
    let last = "";
    new MutationObserver(() => {
      const text = status.textContent.trim();
      if (!text || text === last) return;
      last = text;
      document.getElementById("results")?.scrollIntoView({ block: "start" });
      // a cached example leaves the comparison empty: start it from the ranking shown, once that is drawn
      setTimeout(() => {
        if (!document.getElementById("compare-text")?.textContent.trim()) document.querySelector("#compare-refresh")?.click();
      }, 500);
    }).observe(status, { childList: true, subtree: true, characterData: true });
  };
  watch();
  // The verdict line is announced, and the buttons say their keys.
  const announce = () => {
    const line = document.getElementById("verdict-line");
    if (!line) return setTimeout(announce, 200);
    line.setAttribute("aria-live", "polite");
    line.setAttribute("role", "status");
    const keys = { a: "A ArrowLeft", b: "B ArrowRight", tie: "T", both_bad: "X" };
    for (const [verdict, shortcut] of Object.entries(keys)) {
      document.querySelector(`#verdict-${verdict}`)?.setAttribute("aria-keyshortcuts", shortcut);
    }
  };
  announce();
  // Names for what Gradio leaves unnamed: the pictures' alt text (Best, A, B), the ranked gallery's buttons, and
  // the upload thumbnails ("Thumbnail 1 of 4" gains the file's name).
  const fileName = (src) => decodeURIComponent((src || "").split("?")[0].split("/").pop() || "");
  const text = (id) => document.getElementById(id)?.textContent.trim() || "";
  const picked = (id) => document.querySelector(`#${id} input`)?.value || "";
  const alt = (selector, words) => {
    const img = document.querySelector(`${selector} img`);
    if (img && words && img.getAttribute("alt") !== words) img.setAttribute("alt", words);
  };
  const rankedSource = (file) => {
    if (!file) return "";
    for (const button of document.querySelectorAll("#ranked button")) {
      const caption = button.querySelector(".caption-label")?.textContent.trim() || "";
      if (caption.endsWith(` · ${file}`)) return button.querySelector("img")?.getAttribute("src") || "";
    }
    return "";
  };
  const name = () => {
    alt("#winner", text("winner-text") ? `Best: ${text("winner-text").replace(/\*/g, "")}` : "");
    alt("#image-a", picked("pick-a") && `Image A: ${picked("pick-a")}`);
    alt("#image-b", picked("pick-b") && `Image B: ${picked("pick-b")}`);
    document.querySelectorAll("#ranked button").forEach((button) => {
      const img = button.querySelector("img");
      const words = img?.getAttribute("alt") || button.querySelector(".caption-label")?.textContent.trim();
      if (img && words && button.getAttribute("aria-label") !== words) button.setAttribute("aria-label", words);
    });
    document.querySelectorAll("#images [aria-label^='Thumbnail']").forEach((thumb) => {
      const img = thumb.querySelector("img");
      const file = fileName(img?.getAttribute("src"));
      // A file the browser cannot show is named on its tile, not left blank (scoring skips it and says why).
      const broken = img && img.complete && img.naturalWidth === 0;
      const words = `${thumb.getAttribute("aria-label").split(":")[0]}: ${file}${broken ? BROKEN : ""}`;
      if (file && thumb.getAttribute("aria-label") !== words) thumb.setAttribute("aria-label", words);
      if (broken && !thumb.querySelector(".broken-label")) {
        const label = document.createElement("span");
        label.className = "broken-label";
        label.textContent = `${file}${BROKEN}`;
        thumb.appendChild(label);
      }
    });
    // With "why" on, A and B show the map drawn over the image; their download gives the image itself, as it was
    // ranked (found in the ranked gallery by its name), not the map.
    for (const [box, pick] of [["image-a", "pick-a"], ["image-b", "pick-b"]]) {
      const link = document.querySelector(`#${box} a[download]`);
      const shown = document.querySelector(`#${box} img`)?.getAttribute("src") || "";
      const original = rankedSource(picked(pick));
      if (link && original && /why-\d+\.jpg$/.test(shown) && link.getAttribute("href") !== original) {
        link.setAttribute("href", original);
        link.setAttribute("download", picked(pick));
      }
    }
    // After files are picked, focus goes to the score button (the next step) instead of dropping to the page.
    if (refocus && document.querySelector("#images [aria-label^='Thumbnail']")) {
      refocus = false;
      if (!document.activeElement || document.activeElement === document.body) {
        document.querySelector("#score-btn button, button#score-btn")?.focus();
      }
    }
  };
  const BROKEN = " (cannot be shown: not an image the browser can read; scoring skips it and says why)";
  let refocus = false;
  document.addEventListener("change", (event) => {
    if (event.target.matches?.("#images input[type=file]")) refocus = true;
  }, true);
  // An image that fails to load fires no mutation: name its tile then.
  document.addEventListener("error", (event) => {
    if (event.target.tagName === "IMG" && event.target.closest?.("#images")) setTimeout(name, 0);
  }, true);
  let pending = null;
  new MutationObserver(() => {
    clearTimeout(pending);
    pending = setTimeout(name, 100);
  }).observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["src", "value", "href"] });
}
