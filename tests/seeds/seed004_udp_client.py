# Seed 004_1074fc63d98d4db4.txt, section 2.4, 客户端 (the UDP client; its
# server is ported as examples/timestamp_udp_server.rs).
# Changed: the seed prints the program on one line; the line breaks and
# the indentation are restored. The seed is Python 2; for python3, and
# only for that: raw_input() became input() and sendto(data, ADDR) became
# sendto(data.encode(), ADDR). Host and port are the seed's; the test
# replaces the port 21567 with the server's. Nothing else.
#!/use/bin/env python
from socket import *
HOST = 'localhost'
PORT = 21567
BUFSIZE = 1024
ADDR = (HOST, PORT)
udpCliSock = socket(AF_INET, SOCK_DGRAM)
while True:
    data = input('> ')
    if not data:
        break
    udpCliSock.sendto(data.encode(), ADDR)
    data, addr = udpCliSock.recvfrom(BUFSIZE)
    if not data:
        break
    print(data.decode('utf-8'))
udpCliSock.close()
