# Seed 004_1074fc63d98d4db4.txt, section 2.6, 客户端 (the client of the
# socketserver StreamRequestHandler server, which answers one line per
# connection; ported as examples/line_timestamp_server.rs).
# Changed: the seed prints the program on one line; the line breaks and
# the indentation are restored. The seed is Python 2; for python3, and
# only for that: raw_input() became input(), send('%s\r\n' % data) became
# send(('%s\r\n' % data).encode()), and `print data.strip()` became
# print(data.strip().decode()). Host and port are the seed's; the test
# replaces the port 21567 with the server's. Nothing else.
#!/use/bin/env python
# -*- coding: utf-8 -*-
from socket import *
HOST = 'localhost'
PORT = 21567
BUFSIZE = 1024
ADDR = (HOST, PORT)
while True:
    tcpCliSock = socket(AF_INET)
    tcpCliSock.connect(ADDR)
    data = input('> ')
    if not data:
        break
    tcpCliSock.send(('%s\r\n' % data).encode())
    data = tcpCliSock.recv(BUFSIZE)
    if not data:
        break
    print(data.strip().decode())
    tcpCliSock.close()
