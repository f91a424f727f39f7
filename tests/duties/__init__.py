"""Platform duties: dormancy, personal data reporting, uninstall."""
