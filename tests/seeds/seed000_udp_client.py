# Seed 000_52dec2213283d72d.txt, the UDP client (talks to the server that
# answers b"Thank for you msg"; ported as examples/udp_ack_server.rs).
# Changed: the seed prints the program on one line with its line numbers;
# the line breaks and the indentation are restored and the numbers dropped.
# HOST '172.40.71.149' became '127.0.0.1'; the test replaces the port 8888
# with the server's. Nothing else.
from socket import *

#定义服务器地址
HOST = '127.0.0.1'
POST = 8888
ADDR = (HOST,POST)

#创建udp套接字
sockfd = socket(AF_INET,SOCK_DGRAM)

#收发消息
while True:
    data = input("Msg>>")
    if not data:
        break
    sockfd.sendto(data.encode(),ADDR)
    msg,addr = sockfd.recvfrom(1024)
    print("Receive from server:",msg.decode())

sockfd.close()
