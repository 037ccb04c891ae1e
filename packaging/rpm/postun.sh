# %postun of picket-agent and picket-collector. RPM has no purge: /var/lib/%{NAME}
# (buffer, read positions, stored events) is left on erase, as RPM packages leave their
# data; remove it by hand when it is no longer needed.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
