# Seed 000_52dec2213283d72d.txt, the first TCP client (talks to the server
# that answers b"Receve your message!!"; ported as examples/ack_server.rs).
# Changed: the seed prints the program on one line with its line numbers;
# the line breaks and the indentation are restored and the numbers dropped.
# The host '192.168.43.165' became '127.0.0.1'; the test replaces the port
# 8888 with the server's. Nothing else.
from socket import *

#创套接字
sockfd = socket()

#发起连接
server_addr = ('127.0.0.1',8888)
sockfd.connect(server_addr)

#收发消息
while True:
    #发
    data = input(">>")
    sockfd.send(data.encode())
    if not data:
        break
    #收
    data = sockfd.recv(1024)
    print("From server:",data.decode())

#关闭套接子
sockfd.close()
