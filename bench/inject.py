# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Submit N messages to the local MTA on 127.0.0.1:25 over one SMTP session (runs inside a container).

Usage: python3 inject.py COUNT TAG
"""

import smtplib
import sys

count, tag = int(sys.argv[1]), sys.argv[2]
with smtplib.SMTP("127.0.0.1", 25, timeout=120) as smtp:
    for number in range(count):
        body = "Message-ID: <%s.%d@bench.example.com>\r\nSubject: bench %d\r\n\r\nbench\r\n" % (tag, number, number)
        smtp.sendmail("bench@example.com", ["rcpt%d@example.net" % (number % 50)], body)
