// Applies the saved or system colour theme before the page paints (no flash of the wrong
// theme). The toggle in app.js saves the choice under "dawn.theme".
(function () {
  var theme = null;
  try {
    theme = window.localStorage.getItem("dawn.theme");
  } catch (e) {
    theme = null;
  }
  if (theme !== "dark" && theme !== "light") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-theme", theme);
})();
