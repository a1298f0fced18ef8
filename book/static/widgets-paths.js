// Loaded between require.js and the widget manager (see nb_ipywidgets_js in _config.yml).
// The manager's bundles are named AMD modules that load their fonts from the folder of the
// module's URI, which require.js resolves against the page ("book/@jupyter-widgets/…", a 404).
// Map every name into html-manager/dist/ next to this script in _static/, where the Makefile puts
// the fonts (the most specific path wins in require.js). The modules are defined inline by
// embed-amd.js: these URIs anchor the fonts and are never fetched themselves.
(function () {
  var here = document.currentScript.src;
  var dist = here.slice(0, here.lastIndexOf("/") + 1) + "html-manager/dist/";
  var paths = { "@jupyter-widgets/html-manager/dist/libembed-amd": dist + "libembed-amd" };
  ["base", "controls", "output", "html-manager"].forEach(function (name) {
    paths["@jupyter-widgets/" + name] = dist + name;
  });
  window.require.config({ paths: paths });
})();
