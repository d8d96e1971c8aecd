/*
 * chronum-lab: %%chronum cells are highlighted as YAML in JupyterLab 4.
 *
 * Written by hand rather than built by webpack: JupyterLab loads this file as a federated
 * extension (it calls window._JUPYTERLAB["chronum-lab"].init(shareScope), then .get("./extension")
 * and activates the plugins the returned factory gives). The plugin needs no shared module:
 * a code cell's language follows its model's mimeType, so a cell whose text starts with
 * %%chronum gets "text/x-yaml" (JupyterLab's own YAML mode), and the others the notebook's.
 */
(function () {
  "use strict";

  var YAML = "text/x-yaml";
  var MAGIC = /^%%chronum(\s|$)/;

  function isNotebookPanel(widget) {
    var content = widget && widget.content;
    return !!(content && content.model && content.widgets && "codeMimetype" in content);
  }

  function watchNotebook(panel) {
    var notebook = panel.content;
    var watchedCells = new WeakSet();
    var busy = false;

    function applyTo(cell) {
      var model = cell.model;
      if (!model || model.type !== "code" || !model.sharedModel) {
        return;
      }
      var chronum = MAGIC.test(model.sharedModel.getSource());
      var wanted = chronum ? YAML : notebook.codeMimetype;
      if (chronum) {
        cell.node.setAttribute("data-chronum-language", "yaml");
      } else {
        cell.node.removeAttribute("data-chronum-language");
      }
      if (!watchedCells.has(model) && model.mimeTypeChanged) {
        watchedCells.add(model);
        // The notebook resets every code cell's mimeType when the kernel's language is
        // known: set ours again.
        model.mimeTypeChanged.connect(function () {
          if (!busy) {
            setTimeout(apply, 0);
          }
        });
      }
      if (model.mimeType !== wanted) {
        model.mimeType = wanted;
      }
    }

    function apply() {
      busy = true;
      try {
        notebook.widgets.forEach(applyTo);
      } finally {
        busy = false;
      }
    }

    notebook.modelContentChanged.connect(apply);
    if (panel.sessionContext && panel.sessionContext.kernelChanged) {
      panel.sessionContext.kernelChanged.connect(function () {
        setTimeout(apply, 0);
      });
    }
    apply();
  }

  var plugin = {
    id: "chronum-lab:yaml-cells",
    description: "Highlights %%chronum cells as YAML.",
    autoStart: true,
    activate: function (app) {
      var watched = new WeakSet();

      function scan() {
        var widgets = app.shell.widgets("main");
        for (var it = widgets.next(); !it.done; it = widgets.next()) {
          var widget = it.value;
          if (isNotebookPanel(widget) && !watched.has(widget)) {
            watched.add(widget);
            if (widget.context && widget.context.ready) {
              widget.context.ready.then(watchNotebook.bind(null, widget));
            } else {
              watchNotebook(widget);
            }
          }
        }
      }

      app.restored.then(function () {
        scan();
        if (app.shell.layoutModified) {
          app.shell.layoutModified.connect(scan);
        }
        if (app.shell.currentChanged) {
          app.shell.currentChanged.connect(scan);
        }
      });
    }
  };

  var registry = (window._JUPYTERLAB = window._JUPYTERLAB || {});
  registry["chronum-lab"] = {
    init: function () {},
    get: function (module) {
      if (module !== "./extension") {
        return Promise.reject(new Error("chronum-lab has no module " + module));
      }
      return Promise.resolve(function () {
        return { __esModule: true, default: [plugin] };
      });
    }
  };
})();
