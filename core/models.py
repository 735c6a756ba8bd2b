from django.db import models


class Access(models.Model):
    """No table: the content type that core's own permissions (core.view_dashboards) hang on.

    Roles and their permissions are declared in core/roles.py and synced after every migrate.
    """

    class Meta:
        managed = False
        default_permissions = ()
