// pwsync panel: the progress bar of a running job (server-sent events), and buttons that say
// they are working. Everything else is plain HTML forms.
"use strict";

document.addEventListener("submit", (e) => {
  const b = e.target.querySelector("button[type=submit]");
  if (b) {
    b.disabled = true;
    b.textContent = b.textContent + " …";
  }
});

const run = document.getElementById("run");
if (run) {
  const id = Number(run.dataset.run);
  const bar = document.getElementById("progress");
  const msg = document.getElementById("progress-message");
  const events = new EventSource("events");
  events.addEventListener("progress", (ev) => {
    const p = JSON.parse(ev.data);
    if (p.run !== id) return;
    bar.value = p.fraction;
    msg.textContent = p.message;
    if (p.state === "succeeded" || p.state === "failed") {
      bar.value = p.state === "succeeded" ? 1 : bar.value;
      run.dataset.state = p.state;
      document.getElementById("run-title").textContent =
        p.state === "succeeded" ? "Finished" : "Failed";
      document.getElementById("progress-done").hidden = false;
      events.close();
    }
  });
}
