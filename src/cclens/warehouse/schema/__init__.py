"""One module per component, each calling :func:`cclens.warehouse.migrations.register`."""
