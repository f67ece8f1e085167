// The console's one script: the copy button of a token shown once. The
// console works without it; nothing here is inline (the CSP forbids it).
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) {
    return;
  }
  var field = document.getElementById(button.getAttribute("data-copy"));
  var status = button.parentElement.querySelector(".copied");
  function said(text) {
    if (status) {
      status.textContent = text;
    }
  }
  field.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(
      function () { said("Copied."); },
      function () { said("Copy failed: select the token and copy it yourself."); });
  } else {
    said(document.execCommand && document.execCommand("copy") ? "Copied." : "Select the token and copy it yourself.");
  }
});
