# Seed 004_1074fc63d98d4db4.txt, section 2.3, 客户端 (the plain TCP client;
# its server is ported as examples/timestamp_server.rs, and
# examples/line_timestamp_server.rs answers it too).
# Changed: the seed prints the program on one line; the line breaks and
# the indentation are restored. The seed is Python 2; for python3, and
# only for that: raw_input() became input(), send(data) became
# send(data.encode()), and `print data` became print(data.decode()).
# Host and port are the seed's; the test replaces the port 21567 with the
# server's. Nothing else.
#!/use/bin/env python
from socket import *
HOST = 'localhost'
PORT = 21567
BUFSIZE = 1024
ADDR = (HOST, PORT)
tcpCliSock = socket(AF_INET)
tcpCliSock.connect(ADDR)
while True:
    data = input('> ')
    if not data:
        break
    tcpCliSock.send(data.encode())
    data = tcpCliSock.recv(BUFSIZE)
    if not data:
        break
    print(data.decode())
tcpCliSock.close()
