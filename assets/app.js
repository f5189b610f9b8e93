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
  // Names for what Gradio leaves unnamed: the pictures' alt text (Best, A, B), the ranked gallery's buttons, and
  // the upload thumbnails ("Thumbnail 1 of 4" gains the file's name).
  const fileName = (src) => decodeURIComponent((src || "").split("?")[0].split("/").pop() || "");
  const text = (id) => document.getElementById(id)?.textContent.trim() || "";
  const picked = (id) => document.querySelector(`#${id} input`)?.value || "";
  const alt = (selector, words) => {
    const img = document.querySelector(`${selector} img`);
    if (img && words && img.getAttribute("alt") !== words) img.setAttribute("alt", words);
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
      const file = fileName(thumb.querySelector("img")?.getAttribute("src"));
      const words = `${thumb.getAttribute("aria-label").split(":")[0]}: ${file}`;
      if (file && thumb.getAttribute("aria-label") !== words) thumb.setAttribute("aria-label", words);
    });
  };
  let pending = null;
  new MutationObserver(() => {
    clearTimeout(pending);
    pending = setTimeout(name, 100);
  }).observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["src", "value"] });
}
