# Creates or extends a fail2ban database with fail2ban's own code
# (fail2ban.server.database.Fail2BanDb), as fail2ban-server would: a jail
# per name (fail2ban's test DummyJail) and a ban ticket per ban. Reads a
# JSON object from standard input:
#   {"db": PATH, "upgrade": true|false,
#    "bans": [{"jail": J, "ip": IP, "time": UNIX, "bantime": SECONDS, "count": N}]}
# bantime null leaves the ticket's own unset (the jail's default then
# applies, as in fail2ban); "upgrade" just opens PATH, which upgrades an
# older schema the way fail2ban does at start.
import json
import sys

from fail2ban.server.database import Fail2BanDb
from fail2ban.server.ticket import FailTicket
from fail2ban.tests.dummyjail import DummyJail

spec = json.load(sys.stdin)
db = Fail2BanDb(spec["db"])
jails = {}
for b in spec.get("bans", []):
    name = b["jail"]
    if name not in jails:
        jails[name] = DummyJail(name=name)
        db.addJail(jails[name])
    t = FailTicket(b["ip"], b["time"], ["%s failed" % b["ip"]])
    if b.get("bantime") is not None:
        t.setBanTime(b["bantime"])
    t.setBanCount(b.get("count", 1))
    db.addBan(jails[name], t)
db.close()
print(json.dumps({"version": Fail2BanDb.__version__}))
