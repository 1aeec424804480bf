"""The dashboard's screens: one per view, the detail of a deployment, and the dialogs."""
